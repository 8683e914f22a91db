"""Reading Jira: `JiraSource` lists the issues the JQL matches and reads the changed ones.

doc_id is the issue's id ("10042"), which stays when the issue moves to another project and
its key changes: a move is an update of one document (its payload: key, url, project), never
a delete and an add, and its vectors are kept when its text did not change.

scan() is the cheap listing: every matching issue's id, key and `updated`, nothing else. An
issue that is gone from it (deleted, moved out of the JQL, hidden from the account by a
security level or a permission change) is deleted from the collections. read() fetches
bodies in batches of `page_size` ids, for the issues whose hint changed only; an issue's
comments are paged separately only when it has more than its search result held.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from vector_sync.core.batches import batched
from vector_sync.core.documents import Document, ReadFailure, SourceEntry
from vector_sync.sources.atlassian.client import AtlassianError
from vector_sync.sources.jira.fields import comment_page, document_fields, hint, jira_fields
from vector_sync.sources.jira.search import JiraApi
from vector_sync.sources.jira.settings import JiraSettings

log = logging.getLogger(__name__)


class JiraSource:
    """The issues matching `settings.jql`; `fields` are the document fields the collections
    embed or copy to the payload (None: all), so only those Jira fields are fetched."""

    scoped_reads = True  # read() asks for the ids within the JQL

    def __init__(self, name: str, settings: JiraSettings,
                 fields: Sequence[str] | None = None) -> None:
        self.name = name
        self.settings = settings
        self._jira_fields = jira_fields(fields)
        self._hints: dict[str, str] = {}

    def scan(self) -> Iterator[SourceEntry]:
        api = JiraApi(self.settings)
        try:
            listed = api.listing()
        finally:
            api.close()
        log.info("%s: Jira listed %d issues", self.name, len(listed))
        for issue in listed:
            self._hints[issue.id] = hint(issue.updated, issue.key)
            yield SourceEntry(issue.id, self._hints[issue.id])

    def read(self, doc_ids: Iterable[str]) -> Iterator[Document | ReadFailure]:
        # an id that is not a number was never an issue's id (it cannot be in a JQL list)
        wanted = [doc_id for doc_id in dict.fromkeys(doc_ids) if doc_id.isdigit()]
        if not wanted:
            return
        api = JiraApi(self.settings)
        try:
            for batch in batched(wanted, self.settings.page_size):
                for issue in api.issues(batch, self._jira_fields):
                    if isinstance(issue, tuple):
                        doc_id, error = issue
                        yield ReadFailure(doc_id, self._hints.get(doc_id, ""),
                                          f"http_{error.status}", error.message)
                        continue
                    result = self._document(api, issue)
                    if result is not None:
                        yield result
        finally:
            api.close()

    def _document(self, api: JiraApi, issue: dict[str, Any]) -> Document | ReadFailure | None:
        doc_id = str(issue.get("id"))
        raw = issue.get("fields")
        fields = raw if isinstance(raw, dict) else {}
        version = hint(str(fields.get("updated") or ""), str(issue.get("key")))
        comments = None
        if "comment" in self._jira_fields and not comment_page(fields)[1]:
            try:
                comments = api.comments(doc_id)
            except AtlassianError as error:
                if error.status == 404:
                    return None  # deleted since the search
                return ReadFailure(doc_id, version, f"http_{error.status}",
                                   f"its comments could not be read: {error.message}")
        try:
            values = document_fields(issue, comments, self.settings.url,
                                     wiki=self.settings.api == "data_center")
        except ValueError as error:
            return ReadFailure(doc_id, version, "invalid_issue", str(error))
        return Document(doc_id, version, values)
