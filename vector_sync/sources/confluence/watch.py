"""The confluence source's cheap look, for its watch sensor: has anything in scope changed
since the last look, without listing every page each time?

Two signals. On every look, one search for the most recently modified page in scope
(`lastmodified >= <a day before the last look> order by lastmodified desc`, one result, no
body): a page edited or created since then is the newest, so a newest page other than the
one seen last time is a change. The day's margin is because Confluence reads the date in the
sync account's time zone. What that search cannot see (a trashed, deleted, moved, relabelled
or newly restricted page keeps or loses its modification date) is caught by the full listing:
every page's version hint, fingerprinted, at most every `full_listing_every_s`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from vector_sync.core.source import ChangeCheck, SourceUnavailable, fingerprint
from vector_sync.sources.atlassian.client import AtlassianClient, AtlassianError
from vector_sync.sources.confluence.pages import list_pages, refused, search
from vector_sync.sources.confluence.settings import ConfluenceSettings

MARGIN = timedelta(days=1)  # CQL dates are in the account's time zone, at most ±14 h off


def look(name: str, settings: ConfluenceSettings, state: dict[str, Any] | None) -> ChangeCheck:
    state = state or {}
    started = datetime.now(UTC)
    client = settings.client()
    try:
        newest = _newest(client, name, settings, state.get("looked_at"))
        listing_due = not state or time.time() - float(state.get("listed_at", 0)) >= \
            settings.full_listing_every_s
        current = fingerprint(list_pages(client, name, settings)) if listing_due \
            else state.get("fingerprint")
    finally:
        client.close()
    changes = []
    if not state:
        changes.append("not looked at yet")
    else:
        if newest is not None and newest["key"] != state.get("newest"):
            changes.append(f"page {newest['title']!r} modified at {newest['when']}")
        if current != state.get("fingerprint"):
            changes.append("pages added, removed, moved, relabelled or restricted")
    new_state = {
        "looked_at": started.isoformat(),
        "newest": newest["key"] if newest is not None else state.get("newest"),
        "fingerprint": current,
        "listed_at": time.time() if listing_due else state.get("listed_at")}
    summary = "; ".join(changes) or "unchanged" + ("" if listing_due else
                                                   " (modifications only)")
    return ChangeCheck(bool(changes), f"{settings.where()}: {summary}", new_state)


def _newest(client: AtlassianClient, name: str, settings: ConfluenceSettings,
            looked_at: str | None) -> dict[str, str] | None:
    """The most recently modified page since a day before `looked_at` (or now), if any."""
    since = (datetime.fromisoformat(looked_at) if looked_at else datetime.now(UTC)) - MARGIN
    cql = (f'{settings.scope_cql()} AND lastmodified >= "{since:%Y-%m-%d %H:%M}" '
           "order by lastmodified desc")
    try:
        # one page of one result: the search is not paged further
        for page, _ in search(client, settings, cql, "version", 1):
            version = page.get("version") or {}
            return {"key": f"{page.get('id')}:{version.get('number')}",
                    "title": str(page.get("title")), "when": str(version.get("when"))}
    except AtlassianError as error:
        raise SourceUnavailable(refused(name, settings, error)) from None
    return None
