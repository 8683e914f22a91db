"""Listing and reading a Confluence site's pages through REST API v1 (Cloud and Data Center).

The listing is one CQL search of every page in scope (`content/search`, paged by
`_links.next`), expanded with what a page's version hint needs and nothing more: the version
number, the ancestors and the labels. The hint is the version number plus a digest of the
title, the ancestor ids and the labels, because a move (and a label change) keeps the version
number: a moved page is read again, and the diff finds its body unchanged (a payload-only
update). Reads are the same search restricted to a batch of ids (`id in (...)` ANDed with the
scope, so a page out of scope is never read), expanded with the body and the payload fields.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from vector_sync.core.batches import batched
from vector_sync.core.documents import Document, ReadFailure, SourceEntry
from vector_sync.core.hashing import digest
from vector_sync.core.source import SourceUnavailable
from vector_sync.sources.atlassian.client import AtlassianClient, AtlassianError
from vector_sync.sources.confluence.settings import ConfluenceSettings
from vector_sync.sources.confluence.storage import StorageError, storage_to_text

log = logging.getLogger(__name__)

SEARCH = "rest/api/content/search"
LIST_LIMIT = 200  # pages per listing request (the server may answer fewer)
READ_BATCH = 25  # pages per read request: bodies are large
LIST_EXPAND = "version,ancestors,metadata.labels"
READ_EXPAND = ("version,ancestors,space,metadata.labels,history,"
               "restrictions.read.restrictions.user,restrictions.read.restrictions.group")
MAX_BODY_CHARS = 5_000_000


def search(client: AtlassianClient, settings: ConfluenceSettings, cql: str, expand: str,
           limit: int) -> Iterator[tuple[dict[str, Any], str]]:
    """Every result of a CQL search with the site's web base URL, following `_links.next`.
    Raises AtlassianError for a query Confluence rejects."""
    params: dict[str, Any] | None = {"cql": cql, "limit": limit, "expand": expand}
    link: str | None = SEARCH
    while link:
        answer = client.get(link, params)
        base = str((answer.get("_links") or {}).get("base") or settings.url)
        for result in answer.get("results") or []:
            if isinstance(result, dict):
                yield result, base
        link, params = (answer.get("_links") or {}).get("next"), None


def refused(name: str, settings: ConfluenceSettings, error: AtlassianError) -> str:
    """What a refused listing means, for SourceUnavailable: a query Confluence rejects (a bad
    `cql`) or an address that is not its REST API, in the server's words."""
    where = f"confluence source {name!r}"
    if error.status == 400:
        return (f"{where}: Confluence rejected the query (check sources.{name}.cql and "
                f"spaces): {error.message}")
    if error.status == 404:
        return (f"{where}: no Confluence REST API at {settings.url} (a Cloud site's address "
                f"ends in /wiki): {error.message}")
    if not error.status:  # not an answer: a link the client would not follow
        return f"{where}: {error.message}"
    return f"{where}: Confluence answered {error.status}: {error.message}"


def check_spaces(client: AtlassianClient, name: str, settings: ConfluenceSettings) -> None:
    """Every configured space exists and the account sees it. A space missing as a whole is
    far more often a typo or a lost permission than a space emptied on purpose, so it stops
    the sync rather than deleting every page of it (remove the key to delete them)."""
    if not settings.spaces:
        return
    seen: set[str] = set()
    link: str | None = "rest/api/space"
    params: dict[str, Any] | None = {"spaceKey": settings.spaces, "limit": len(settings.spaces)}
    while link:
        try:
            answer = client.get(link, params)
        except AtlassianError as error:
            raise SourceUnavailable(refused(name, settings, error)) from None
        seen.update(str(s.get("key")) for s in answer.get("results") or []
                    if isinstance(s, dict))
        link, params = (answer.get("_links") or {}).get("next"), None
    missing = [key for key in settings.spaces if key not in seen]
    if missing:
        raise SourceUnavailable(
            f"confluence source {name!r}: space {', '.join(missing)} does not exist or the "
            f"account cannot see it; nothing was changed (fix sources.{name}.spaces, or remove "
            "the key to delete its pages)")


def version_hint(page: dict[str, Any]) -> str:
    """The version number and a digest of what a move, a rename or a label change alters."""
    version = (page.get("version") or {}).get("number")
    ancestors = [str(a.get("id")) for a in page.get("ancestors") or [] if isinstance(a, dict)]
    labels = sorted(_labels(page))
    moved = digest(str(page.get("title")), "/".join(ancestors), ",".join(labels))[:16]
    return f"{version}:{moved}"


def list_pages(client: AtlassianClient, name: str,
               settings: ConfluenceSettings) -> Iterator[SourceEntry]:
    """Every page in scope, cheaply. Raises SourceUnavailable when they cannot be listed."""
    check_spaces(client, name, settings)
    seen: set[str] = set()  # a page edited while the listing pages may be listed twice
    try:
        for page, _ in search(client, settings, settings.scope_cql(), LIST_EXPAND,
                              LIST_LIMIT):
            doc_id = str(page.get("id") or "")
            if doc_id and doc_id not in seen:
                seen.add(doc_id)
                yield SourceEntry(doc_id, version_hint(page))
    except AtlassianError as error:
        raise SourceUnavailable(refused(name, settings, error)) from None


def read_pages(client: AtlassianClient, settings: ConfluenceSettings, doc_ids: Iterable[str],
               hints: dict[str, str], with_body: bool) -> Iterator[Document | ReadFailure]:
    """The pages still in scope among `doc_ids`; a page gone (trashed, deleted, restricted,
    out of scope) since the listing is left out. A read request Confluence refuses fails its
    pages (`http_<status>`); a site that cannot be reached raises SourceUnavailable."""
    expand = READ_EXPAND + (",body.storage" if with_body else "")
    for batch in batched([d for d in doc_ids if d.isdigit()], READ_BATCH):
        cql = f"id in ({', '.join(batch)}) AND {settings.scope_cql()}"
        try:
            found = list(search(client, settings, cql, expand, READ_BATCH))
        except AtlassianError as error:
            for doc_id in batch:
                yield ReadFailure(doc_id, hints.get(doc_id, ""), f"http_{error.status}",
                                  f"Confluence refused to return the page: {error.message}")
            continue
        for page, base in found:
            yield page_document(page, base, with_body)


def page_document(page: dict[str, Any], base: str, with_body: bool) -> Document | ReadFailure:
    doc_id, hint = str(page.get("id")), version_hint(page)
    version = page.get("version") or {}
    if not isinstance(version.get("number"), int):
        return ReadFailure(doc_id, hint, "bad_response", "Confluence answered the page "
                           "without its version number")
    fields: dict[str, Any] = {
        "title": str(page.get("title") or ""),
        "space": (page.get("space") or {}).get("key"),
        "ancestors": [str(a.get("title")) for a in page.get("ancestors") or []
                      if isinstance(a, dict)],
        "labels": _labels(page),
        "author": _display_name((page.get("history") or {}).get("createdBy")),
        "url": base.rstrip("/") + str((page.get("_links") or {}).get("webui") or ""),
        "version": version["number"],
        "modified_at": version.get("when"),
        "restricted": _restricted(page),
    }
    if with_body:
        storage = str(((page.get("body") or {}).get("storage") or {}).get("value") or "")
        if len(storage) > MAX_BODY_CHARS:
            return ReadFailure(doc_id, hint, "too_large", f"the page's storage format has "
                               f"{len(storage)} characters (more than {MAX_BODY_CHARS})")
        try:
            fields["body"] = storage_to_text(storage)
        except StorageError as error:
            return ReadFailure(doc_id, hint, "bad_storage", str(error))
    return Document(doc_id, hint, fields)


def _labels(page: dict[str, Any]) -> list[str]:
    labels = ((page.get("metadata") or {}).get("labels") or {}).get("results") or []
    return [str(label.get("name")) for label in labels if isinstance(label, dict)]


def _display_name(user: Any) -> str | None:
    if not isinstance(user, dict):
        return None
    return user.get("displayName") or user.get("publicName") or user.get("username")


def _restricted(page: dict[str, Any]) -> bool:
    """Whether the page itself has read restrictions (those it inherits from an ancestor are
    not in this answer)."""
    read = ((page.get("restrictions") or {}).get("read") or {}).get("restrictions") or {}
    return any(((read.get(kind) or {}).get("results") or []) for kind in ("user", "group"))
