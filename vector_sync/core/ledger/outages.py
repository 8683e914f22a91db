"""A PostgreSQL server briefly unreachable (a restart, a failover) is waited out: the
ledger's calls are repeated for up to `state.ledger_outage_s`; then, and for any other
database error, the call fails with LedgerUnavailable, which names the URL with its password
masked."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

_RETRY_DELAYS_S = (0.5, 1, 2, 4)  # then every 5 s, while the outage window lasts
log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


class LedgerUnavailable(Exception):
    """The ledger database cannot be opened, migrated, read or written (a PostgreSQL server
    unreachable for longer than the outage window); the message names the masked URL."""


class OutageWindow:
    """How long a ledger's database may stay unreachable, and the waiting meanwhile."""

    def __init__(self, url: URL, outage_s: float) -> None:
        self.masked_url = url.render_as_string(hide_password=True)
        self.outage_s = outage_s
        self._password = url.password
        # SQLite is a local file: its errors (disk full, corruption) do not pass by waiting,
        # and a busy database is already waited for (busy_timeout)
        self._postgresql = url.get_backend_name() == "postgresql"

    def retrying(self, work: Callable[[], R], doing: str = "use") -> R:
        """`work()`, repeated while the PostgreSQL server is unreachable, for up to the
        outage window; any other database error (or the window over) is LedgerUnavailable."""
        deadline, delays = time.monotonic() + self.outage_s, iter(_RETRY_DELAYS_S)
        while True:
            try:
                return work()
            except DBAPIError as error:
                reason = self.reason(error)
                failed = f"cannot {doing} the ledger at {self.masked_url}: "
                left = deadline - time.monotonic()
                if not (self._postgresql and _is_outage(error)) or self.outage_s == 0:
                    raise LedgerUnavailable(failed + reason) from None
                if left <= 0:
                    raise LedgerUnavailable(
                        f"{failed}unreachable for {self.outage_s:g} s "
                        f"(state.ledger_outage_s): {reason}") from None
                log.warning("the ledger at %s is unreachable (%s): retrying for up to %.0f s",
                            self.masked_url, reason.splitlines()[0], left)
                time.sleep(min(next(delays, 5), left))

    def reason(self, error: BaseException) -> str:
        """The database's own words for the error, without the password."""
        reason = str(error.orig if isinstance(error, DBAPIError) else error).strip()
        return reason.replace(str(self._password), "***") if self._password else reason


def _is_outage(error: DBAPIError) -> bool:
    return error.connection_invalidated or isinstance(error, OperationalError | InterfaceError)


class _WaitsOutOutages(Protocol):
    @property
    def outages(self) -> OutageWindow: ...


S = TypeVar("S", bound=_WaitsOutOutages)


def outage_tolerant(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Reads and transactions of the ledger, repeated while a PostgreSQL server is briefly
    unreachable. Safe because each call is one transaction, rolled back by the server when
    the connection drops, and writes are idempotent upserts and deletes. An iterator
    argument is taken into a list first, so a retry sees it whole."""

    @functools.wraps(method)
    def tolerant(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
        kept = [list(a) if isinstance(a, Iterator) else a for a in args]
        return self.outages.retrying(lambda: method(self, *kept, **kwargs))  # type: ignore[arg-type]

    return tolerant
