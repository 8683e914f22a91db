"""The `jira` source kind: the issues a JQL query matches, on Jira Cloud or Data Center.

Each issue is one document whose id is the issue's id, so an issue moved to another project
(a new key) stays one document. A sync lists every matching issue's id, key and `updated`
(one cheap search, paged), reads the bodies of the issues whose `updated` or key changed,
and deletes the issues no longer listed.

- settings.py: the keys (`JiraSettings`), Cloud or Data Center, the JQL scope.
- search.py: the REST calls (search/jql on Cloud, search on Data Center, comments).
- source.py: `JiraSource`, the listing and the reads.
- fields.py: an issue's JSON as the document's fields.
- adf.py, wiki.py: description and comment bodies (ADF, wiki markup) as text.
- watch.py: the watch sensor's cheap look (the newest issue, and a periodic listing).
The HTTP client (auth, Retry-After, retries, masked secrets) is shared with Confluence:
vector_sync.sources.atlassian.client.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vector_sync.core.source import ChangeCheck, Source
from vector_sync.sources.jira.settings import JiraSettings
from vector_sync.sources.jira.source import JiraSource
from vector_sync.sources.jira.watch import look

__all__ = ["JiraConfig", "JiraSource"]


class JiraConfig(JiraSettings):
    """The issues of a Jira site (Cloud or Data Center) that a JQL query matches."""

    def open(self, name: str, fields: Sequence[str] | None) -> Source:
        return JiraSource(name, self, fields)

    def look(self, name: str, state: dict[str, Any] | None) -> ChangeCheck:
        return look(name, self, state)
