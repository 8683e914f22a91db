"""The `confluence` source kind: the pages of Confluence spaces (Cloud or Data Center),
optionally narrowed by CQL, as their readers see them.

scan() is one cheap listing of every page in scope (ids, version numbers, ancestors, titles,
labels; no bodies), so a page trashed, deleted or restricted away from the sync account
disappears from it and is deleted; read() fetches bodies only for pages whose hint changed.

- settings.py: the keys (`ConfluenceSettings`), the scope as CQL, the HTTP client.
- pages.py: the listing, the version hint (a move keeps the version number) and the reads.
- storage.py: storage format (XHTML with macros) as text.
- watch.py: the watch sensor's cheap look (the latest modification; a periodic listing).
The HTTP client (auth, paging links, Retry-After, retries) is shared with the jira kind:
vector_sync/sources/atlassian/client.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from vector_sync.core.documents import Document, ReadFailure, SourceEntry
from vector_sync.core.source import ChangeCheck, Source
from vector_sync.sources.confluence.pages import list_pages, read_pages
from vector_sync.sources.confluence.settings import ConfluenceSettings
from vector_sync.sources.confluence.watch import look

__all__ = ["ConfluenceConfig", "ConfluenceSource"]


class ConfluenceConfig(ConfluenceSettings):
    """The pages of Confluence spaces, optionally narrowed by a CQL condition."""

    def open(self, name: str, fields: Sequence[str] | None) -> Source:
        return ConfluenceSource(name, self, fields)

    def look(self, name: str, state: dict[str, Any] | None) -> ChangeCheck:
        return look(name, self, state)


class ConfluenceSource:
    scoped_reads = True  # reads are CQL searches ANDed with the scope

    def __init__(self, name: str, settings: ConfluenceSettings,
                 fields: Sequence[str] | None) -> None:
        self.name = name
        self.settings = settings
        # the body is the costly part of a read: fetched only when a collection uses it
        self._with_body = fields is None or "body" in fields
        self._hints: dict[str, str] = {}

    def scan(self) -> Iterator[SourceEntry]:
        client = self.settings.client()
        try:
            for entry in list_pages(client, self.name, self.settings):
                self._hints[entry.doc_id] = entry.version
                yield entry
        finally:
            client.close()

    def read(self, doc_ids: Iterable[str]) -> Iterator[Document | ReadFailure]:
        client = self.settings.client()
        try:
            yield from read_pages(client, self.settings, doc_ids, self._hints,
                                  self._with_body)
        finally:
            client.close()
