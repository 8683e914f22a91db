"""The `git` source kind: one document per included file of a branch's head commit.

Content comes from Git objects, never from a working tree, so an uncommitted edit is not
synced. scan() pins the branch head once and lists its tree (`git ls-tree`) with each blob
id as the version hint; changed_since() diffs the last synced commit against that head;
read() takes only the requested blobs, from one `git cat-file --batch` process. A URL repo
is cloned (bare) into `clone_dir` and fetched on every scan (a dry run fetches into a
temporary repository instead, leaving the clone as it is); a local repo's branch is read
where it is. Every git command runs with the repository's git dir, never its working tree.

- settings.py: the keys (`GitSettings`).
- objects.py: the Git plumbing (refs, trees, blobs, diffs, authors, clone and fetch).
- here: `GitConfig` and `GitSource`, which pins a head, picks the document files of its tree
  (with `vector_sync.sources.files`) and reads them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Self

from vector_sync.core.documents import Document, ReadFailure, SourceEntry
from vector_sync.core.secrets import mask_url
from vector_sync.core.source import ChangeCheck, Source
from vector_sync.sources.files import (
    BadDocument,
    IgnoreLayer,
    PathRules,
    decode_text,
    note_fields,
    trimmed_body,
)
from vector_sync.sources.git.objects import (
    Authors,
    Blobs,
    Entry,
    Repo,
    fetched_clone,
    fetched_copy,
    head_commit,
    is_repo_url,
    local_repo,
    short,
    unavailable,
)
from vector_sync.sources.git.settings import GitSettings

log = logging.getLogger(__name__)

MARKDOWN_SUFFIXES = (".md", ".markdown")


class GitConfig(GitSettings):
    """The files of one branch of a Git repository, from its commits (never a working tree)."""

    def open(self, name: str, fields: Sequence[str] | None) -> Source:
        return GitSource(name, self)

    def open_read_only(self, name: str, fields: Sequence[str] | None) -> Source:
        return GitSource(name, self, read_only=True)

    def look(self, name: str, state: dict[str, Any] | None) -> ChangeCheck:
        """Has the branch head moved since the head kept in `state`? A local repo's ref, or
        `git ls-remote` for a URL: nothing is fetched, no blob is read."""
        head = head_commit(name, self)
        changed = (state or {}).get("head") != head
        return ChangeCheck(changed, f"branch {self.branch} of {mask_url(self.repo)} " + (
            f"has a new head {short(head)}" if changed else f"is still at {short(head)}"),
            {"head": head})

    def resolved(self, name: str, absolute: Callable[[Path], Path], state_dir: Path) -> Self:
        repo = self.repo if is_repo_url(self.repo) else str(absolute(Path(self.repo)))
        clone_dir = absolute(self.clone_dir) if self.clone_dir else state_dir / "git" / name
        return self.model_copy(update={"repo": repo, "clone_dir": clone_dir})


# --- which files are documents ---------------------------------------------------------------


class _Selection:
    """The source's path rules applied to a tree, with the ignore files found in that tree.
    Each folder's verdict is worked out once (a tree has many files per folder)."""

    def __init__(self, source: str, rules: PathRules,
                 ignore_files: dict[str, dict[str, list[str]]]) -> None:
        self._source = source
        self._rules = rules
        self._ignore_files = ignore_files  # folder -> ignore file name -> lines
        self._folders: dict[str, tuple[IgnoreLayer, ...] | None] = {}

    def wants(self, path: str) -> bool:
        layers = self._layers(path[: path.rfind("/") + 1])
        return layers is not None and self._rules.wants(layers, path)

    def _layers(self, folder: str) -> tuple[IgnoreLayer, ...] | None:
        """The ignore layers that apply in `folder`; None when it is not descended into."""
        if folder in self._folders:
            return self._folders[folder]
        layers: tuple[IgnoreLayer, ...] | None = ()
        if folder:
            above = self._layers(folder[: folder.rstrip("/").rfind("/") + 1])
            layers = above if above is not None and self._rules.descends(above, folder) else None
        if layers is not None:
            try:
                layer = self._rules.layer(folder, self._ignore_files.get(folder, {}))
            except ValueError as error:
                raise unavailable(self._source, str(error)) from None
            layers = layers if layer is None else (*layers, layer)
        self._folders[folder] = layers
        return layers


# --- the source ------------------------------------------------------------------------------


@dataclass
class _Pin:
    """What one scan saw: the branch head and its document files."""

    repo: Repo
    head: str
    committed_at: str
    entries: dict[str, Entry]
    selection: _Selection
    authors: Authors | None = None


class GitSource:
    """The files of `config.branch` at its head; doc_id is the path in the tree, with `/`."""

    scoped_reads = True  # read() only knows the selected files of the pinned tree
    # every pin reads the whole tree anyway (local, and cheap beside reading blobs): the
    # engine lists it on every sync
    complete = False
    full_listing_every_s = 0.0

    def __init__(self, name: str, config: GitConfig, read_only: bool = False) -> None:
        self.name = name
        self.config = config
        self._read_only = read_only  # a dry run: a URL repo's clone is not fetched into
        self._rules = PathRules(name, config.include, config.exclude, config.ignore_files)
        self._pinned: _Pin | None = None
        self._pinned_for_scan = False
        self.checkpoint: str | None = None
        self.detection: dict[str, Any] = {}

    # --- scan and change detection ---

    def scan(self) -> Iterator[SourceEntry]:
        if not self._pinned_for_scan:  # pin now, unless changed_since() just did
            self._pinned = self._pin()
        self._pinned_for_scan = False
        for path, entry in self._current().entries.items():
            yield SourceEntry(path, entry.version)

    def changed_since(self, checkpoint: str | None) -> set[str]:
        """Called before scan(): pins the head that scan() then lists."""
        pin = self._pinned = self._pin()
        self._pinned_for_scan = True
        self.checkpoint = pin.head
        base, reason = self._diff_base(pin, checkpoint)
        if base is None:
            self.detection = {"detection": "full tree", "detection_reason": reason,
                              "commit": pin.head}
            log.info("git source %s at %s: full tree comparison: %s", self.name,
                     short(pin.head), reason)
            return set()
        counts: Counter[str] = Counter()
        changed = set()
        for status, path in pin.repo.diff(base, pin.head) if base != pin.head else ():
            if pin.selection.wants(path):
                counts[status] += 1
                if path in pin.entries:
                    changed.add(path)
        total = counts.total()
        summary = (f"commit-diff {short(base)}..{short(pin.head)}: {total} "
                   f"path{'' if total == 1 else 's'} ({counts['A']} added, {counts['M']} "
                   f"modified, {counts['D']} deleted)")
        self.detection = {"detection": "commit-diff", "detection_reason": summary,
                          "commit": pin.head, "commit_range": f"{base}..{pin.head}",
                          "diff_added": counts["A"], "diff_modified": counts["M"],
                          "diff_deleted": counts["D"]}
        log.info("git source %s: %s", self.name, summary)
        return changed

    def _diff_base(self, pin: _Pin, checkpoint: str | None) -> tuple[str | None, str]:
        """The commit to diff from, or None and why the whole tree must be compared."""
        if checkpoint is None:
            return None, ("no last synced commit (first sync, a new collection, or the "
                          "collections were last synced at different commits)")
        if checkpoint == pin.head:
            return checkpoint, ""
        shallow = pin.repo.is_shallow()
        if not pin.repo.has_commit(checkpoint):
            where = "this shallow clone" if shallow else \
                "the repository any more (force-pushed or reset, then garbage-collected)"
            return None, f"the last synced commit {short(checkpoint)} is not in {where}"
        if pin.repo.is_ancestor(checkpoint, pin.head):
            return checkpoint, ""
        if shallow:
            return None, (f"cannot tell whether {short(checkpoint)} is an ancestor of "
                          f"{short(pin.head)}: the repository is a shallow clone")
        return None, (f"history rewritten ({short(checkpoint)} is not an ancestor of "
                      f"{short(pin.head)})")

    def _pin(self) -> _Pin:
        if not is_repo_url(self.config.repo):
            repo = local_repo(self.name, self.config.repo)
        else:
            fetch = fetched_copy if self._read_only else fetched_clone
            repo = fetch(self.name, self.config)
        head, committed = repo.head(self.config.branch)
        tree = dict(repo.tree(head))
        selection = _Selection(self.name, self._rules, self._ignore_files(repo, tree))
        entries = {path: entry for path, entry in tree.items() if selection.wants(path)}
        committed_at = datetime.fromtimestamp(committed, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return _Pin(repo, head, committed_at, entries, selection)

    def _current(self) -> _Pin:
        if self._pinned is None:  # read() without scan(): a targeted sync
            self._pinned = self._pin()
        return self._pinned

    def _ignore_files(self, repo: Repo,
                      tree: dict[str, Entry]) -> dict[str, dict[str, list[str]]]:
        """Folder -> ignore file name -> lines, from the tree's blobs."""
        found: dict[str, dict[str, list[str]]] = {}
        with Blobs(repo) as blobs:
            for path, entry in tree.items():
                folder, _, name = path.rpartition("/")
                if name not in self._rules.ignore_names:
                    continue
                if entry.kind != "blob":
                    # unreadable rules are fatal: guessing could sync files meant to stay out
                    raise unavailable(self.name, f"ignore file {path} is a {entry.kind} in "
                                       "the Git tree, which is never followed")
                text = blobs.get(entry.sha).decode("utf-8-sig", errors="replace")
                found.setdefault(folder + "/" if folder else "", {})[name] = text.splitlines()
        return found

    # --- read ---

    def read(self, doc_ids: Iterable[str]) -> Iterator[Document | ReadFailure]:
        pin = self._current()
        with Blobs(pin.repo) as blobs:
            for doc_id in doc_ids:
                entry = pin.entries.get(doc_id)
                if entry is not None:
                    yield self._document(pin, doc_id, entry, blobs)

    def _document(self, pin: _Pin, doc_id: str, entry: Entry,
                  blobs: Blobs) -> Document | ReadFailure:
        try:
            fields = self._content(doc_id, entry, blobs)
        except BadDocument as bad:
            return ReadFailure(doc_id, entry.version, bad.error_code, bad.message)
        fields.update(path=doc_id, commit=pin.head, committed_at=pin.committed_at,
                      size=entry.size)
        if self.config.last_author:
            fields["last_author"] = self._authors(pin).get(doc_id)
        return Document(doc_id, entry.version, fields)

    def _content(self, doc_id: str, entry: Entry, blobs: Blobs) -> dict[str, Any]:
        if entry.kind == "symlink":
            target = blobs.get(entry.sha).decode("utf-8", "replace")
            raise BadDocument("symlink", f"a symlink in the Git tree ({doc_id} -> {target}); "
                              "symlinks are not followed")
        if entry.kind == "submodule":
            raise BadDocument("submodule", f"a submodule (commit {short(entry.sha)} of "
                              "another repository); its files are not synced")
        limit = self.config.max_file_bytes
        if entry.size > limit:
            raise BadDocument("too_large", f"the file is {entry.size} bytes, over the limit of "
                              f"{limit} bytes (max_file_bytes)")
        text = decode_text(blobs.get(entry.sha))
        if doc_id.lower().endswith(MARKDOWN_SUFFIXES):
            return note_fields(doc_id, text)
        return {"title": PurePosixPath(doc_id).name, "body": trimmed_body(text)}

    def _authors(self, pin: _Pin) -> Authors:
        if pin.authors is None:
            pin.authors = Authors(pin.repo, pin.head, pin.repo.is_shallow())
        return pin.authors
