"""The Jira REST calls of the source, Cloud and Data Center: the cheap listing (ids, keys
and `updated` of every issue the JQL matches), issue bodies for a batch of ids, an issue's
comments page by page, and the newest issue (the watch sensor's look).

Cloud (REST v3) searches with `GET /rest/api/3/search/jql`, paged by `nextPageToken` (the
last page has none, and `isLast`); its `/rest/api/{2,3}/search` answers 410 Gone since
Atlassian retired it. Data Center (REST v2) keeps `GET /rest/api/2/search`, paged by
`startAt` against `total`. Both list in `ORDER BY created ASC`: an issue never moves in
that order while the listing pages through it, so none is skipped (a skipped issue would
look deleted).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from vector_sync.core.source import SourceUnavailable
from vector_sync.sources.atlassian.client import AtlassianClient, AtlassianError
from vector_sync.sources.jira.settings import JiraSettings

log = logging.getLogger(__name__)

LISTING_PAGE = 5000  # Jira answers fewer per page when it must (Cloud: 5000 at most)
COMMENT_PAGE = 100
LISTING_ATTEMPTS = 3  # Data Center: a listing whose total moved while paging is redone


@dataclass(frozen=True)
class Listed:
    """An issue as the cheap listing sees it."""

    id: str
    key: str
    updated: str


class JiraApi:
    """The requests of one source, over one client (`close()` it)."""

    def __init__(self, settings: JiraSettings, client: AtlassianClient | None = None) -> None:
        self.settings = settings
        self.client = client or settings.client()
        self.cloud = settings.api == "cloud"
        self.version = 3 if self.cloud else 2
        self.search_path = "rest/api/3/search/jql" if self.cloud else "rest/api/2/search"

    def close(self) -> None:
        self.client.close()

    # --- listing ---------------------------------------------------------------------------

    def listing(self) -> list[Listed]:
        """Every issue the JQL matches, once each. Raises SourceUnavailable (credentials
        refused, site down, a JQL Jira rejects, a retired API) rather than answering with a
        partial list, which would delete the issues left out."""
        jql = f"({self.settings.scope}) ORDER BY created ASC"
        for _ in range(LISTING_ATTEMPTS):
            issues, steady = self._search_all(jql, ["updated"], LISTING_PAGE)
            if steady:
                break
            log.info("Jira: the number of matching issues changed while listing; listing again")
        found: dict[str, Listed] = {}
        for issue in issues:
            listed = _listed(issue)
            if listed is not None:
                found.setdefault(listed.id, listed)
        return list(found.values())

    def newest(self, since: str | None) -> Listed | None:
        """The most recently updated issue (updated on or after `since`, a JQL date such as
        "2024/05/01 10:20", when given): one issue, one request."""
        window = f' AND updated >= "{since}"' if since else ""
        jql = f"({self.settings.scope}){window} ORDER BY updated DESC"
        page = self._page(jql, ["updated"], 1, None)
        issues = page.get("issues") or []
        return _listed(issues[0]) if issues else None

    # --- bodies ----------------------------------------------------------------------------

    def issues(self, ids: Sequence[str], fields: Sequence[str]) -> Iterator[
            dict[str, Any] | tuple[str, AtlassianError]]:
        """The issues among `ids` that exist and match the JQL, with `fields`; an issue
        Jira refuses is (id, error). Ids that are gone are left out."""
        jql = f"({self.settings.scope}) AND id in ({', '.join(ids)})"
        try:
            issues, _ = self._search_all(jql, fields, self.settings.page_size, listing=False)
        except AtlassianError:
            # Jira rejects a whole `id in (...)` list when one of its issues is gone (deleted
            # since the listing): ask for each alone, and let the gone ones go
            for issue_id in ids:
                yield from self._one(issue_id, fields)
            return
        yield from issues

    def _one(self, issue_id: str, fields: Sequence[str]) -> Iterator[
            dict[str, Any] | tuple[str, AtlassianError]]:
        try:
            page = self._page(f"({self.settings.scope}) AND id = {issue_id}", fields, 1, None,
                              listing=False)
        except AtlassianError as error:
            if error.status == 400 and "does not exist" in error.message:
                return  # deleted, or moved out of the account's sight
            yield issue_id, error
            return
        yield from page.get("issues") or []

    def comments(self, issue_id: str) -> list[dict[str, Any]]:
        """Every comment of an issue, oldest first (when the search's page held fewer than
        the issue has). Raises AtlassianError."""
        path = f"rest/api/{self.version}/issue/{issue_id}/comment"
        found: list[dict[str, Any]] = []
        while True:
            page = self.client.get(path, {"startAt": len(found), "maxResults": COMMENT_PAGE,
                                          "orderBy": "created"})
            comments = [c for c in page.get("comments") or [] if isinstance(c, dict)]
            found.extend(comments)
            total = page.get("total")
            if not comments or not isinstance(total, int) or len(found) >= total:
                return found

    # --- paging ----------------------------------------------------------------------------

    def _search_all(self, jql: str, fields: Sequence[str], size: int,
                    listing: bool = True) -> tuple[list[dict[str, Any]], bool]:
        """Every issue of a search, following the pages; and whether the result stood still
        while paging (Data Center's `total` did not change)."""
        issues: list[dict[str, Any]] = []
        token: str | None = None
        totals: set[int] = set()
        while True:
            page = self._page(jql, fields, size, token if self.cloud else len(issues),
                              listing)
            batch = [issue for issue in page.get("issues") or [] if isinstance(issue, dict)]
            issues.extend(batch)
            if self.cloud:
                following = page.get("nextPageToken")
                if page.get("isLast") is True or not following or not batch:
                    return issues, True
                if following == token:
                    raise SourceUnavailable(f"Jira at {self.settings.url} answered the same "
                                            "page token twice; the listing cannot go on")
                token = following
            else:
                total = page.get("total")
                if isinstance(total, int):
                    totals.add(total)
                if not batch or not isinstance(total, int) or len(issues) >= total:
                    return issues, len(totals) <= 1

    def _page(self, jql: str, fields: Sequence[str], size: int, position: str | int | None,
              listing: bool = True) -> dict[str, Any]:
        """One page of a search. A refusal of a listing (of the whole scope) is
        SourceUnavailable, explained; of a read, the AtlassianError itself."""
        params: dict[str, Any] = {"jql": jql, "fields": ",".join(fields), "maxResults": size}
        if self.cloud and position:
            params["nextPageToken"] = position
        elif not self.cloud:
            params["startAt"] = position or 0
        try:
            return self.client.get(self.search_path, params)
        except AtlassianError as error:
            if not listing:
                raise
            raise SourceUnavailable(self._explain(error)) from None

    def _explain(self, error: AtlassianError) -> str:
        """Why the listing failed, in the terms a user can act on."""
        where = f"Jira at {self.settings.url}"
        if error.status == 400:
            return f"{where} rejected the JQL {self.settings.scope!r}: {error.message}"
        if error.status == 410:
            return (f"{where} answered 410 Gone for /{self.search_path}: {error.message} "
                    "(Jira Cloud retired that search; this is a Cloud site: give `username`, "
                    "the account's email, with an API token, or set `edition: cloud`)")
        if error.status == 404 and self.cloud:
            return (f"{where} has no /{self.search_path} (404): is it Jira Data Center? "
                    "Omit `username` to use a personal access token, or set `edition: "
                    "data_center`")
        return f"{where} answered {error.status} to the search: {error.message}"


def _listed(issue: dict[str, Any]) -> Listed | None:
    issue_id, key = issue.get("id"), issue.get("key")
    fields = issue.get("fields")
    updated = fields.get("updated") if isinstance(fields, dict) else None
    if issue_id is None or not isinstance(key, str):
        return None
    return Listed(str(issue_id), key, updated if isinstance(updated, str) else "")
