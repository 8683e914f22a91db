"""The Jira source's cheap look, for its watch sensor: has anything changed since the last
look, without listing every issue each time?

Two signals, against the state the last look kept:
- the newest issue: `(<jql>) AND updated >= "<day before the last newest>" ORDER BY updated
  DESC` with maxResults 1 (one issue, its `updated` only). Every edit, comment, transition,
  move or new issue makes its issue the newest, with a new `updated`; so a different newest
  (id, key, updated) than last time is a change. The date window only spares Jira work: it
  reaches a day back, so the account's time zone (in which Jira reads a JQL date) cannot hide
  a change, and the comparison is on the newest issue itself.
- deletions, and issues that left the JQL or the account's sight, leave no newest issue
  behind: every `full_listing_every_s` the look also lists every id (the scan's cheap listing)
  and compares a fingerprint of it.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from vector_sync.core.hashing import digest, stable_json
from vector_sync.core.source import ChangeCheck, fingerprint
from vector_sync.sources.jira.search import JiraApi, Listed
from vector_sync.sources.jira.settings import JiraSettings
from vector_sync.sources.jira.source import JiraSource

STATE_VERSION = 1
WINDOW = timedelta(days=1)


def look(name: str, settings: JiraSettings, state: dict[str, Any] | None) -> ChangeCheck:
    """Whether source `name` changed since `state` (None: never looked), and the state to
    keep. Raises SourceUnavailable."""
    scope = digest(stable_json({"url": settings.url, "jql": settings.scope,
                                "username": settings.username, "api": settings.api}))
    previous = state if state and state.get("v") == STATE_VERSION and \
        state.get("scope") == scope else None
    where = settings.where()
    before: dict[str, str] | None = (previous or {}).get("newest")
    api = JiraApi(settings)
    try:
        newest = api.newest(_window(before["updated"]) if before else None)
    finally:
        api.close()
    now = _newest_state(newest) or before  # nothing in the window: the newest is unchanged
    new_state: dict[str, Any] = {"v": STATE_VERSION, "scope": scope, "newest": now,
                                 **{k: (previous or {}).get(k) for k in ("fingerprint",
                                                                           "listed_at")}}
    changes: list[str] = []
    if previous is None:
        changes.append("first look at this source: a sync sets the baseline")
    elif now != before and now is not None:
        changes.append(f"{now['key']} was updated ({now['updated']})")
    listed_at = (previous or {}).get("listed_at") or 0.0
    if time.time() - listed_at >= settings.full_listing_every_s:
        current = fingerprint(JiraSource(name, settings, ["key"]).scan())
        if previous is not None and current != previous.get("fingerprint"):
            changes.append("the list of issues changed (added, deleted or moved out of scope)")
        new_state.update(fingerprint=current, listed_at=time.time())
    if changes:
        return ChangeCheck(True, f"{where}: {'; '.join(changes)}", new_state)
    since = f" since {now['key']} at {now['updated']}" if now else ""
    return ChangeCheck(False, f"{where}: no issue updated{since}", new_state)


def _newest_state(newest: Listed | None) -> dict[str, str] | None:
    if newest is None:
        return None
    return {"id": newest.id, "key": newest.key, "updated": newest.updated}


def _window(updated: str) -> str | None:
    """A JQL date a day before `updated`, in the time zone Jira wrote it in."""
    try:
        moment = datetime.strptime(updated, "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        return None
    return (moment - WINDOW).strftime("%Y/%m/%d %H:%M")
