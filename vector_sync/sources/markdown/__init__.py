"""The `markdown` source kind: one document per note file of a folder (an Obsidian vault),
with its front matter and Obsidian-style metadata.

`scan()` only lists and stats files; `read()` decodes, parses frontmatter and derives the
title, tags, aliases and wikilinks (with `vector_sync.sources.files`, shared with the Git
source). Nothing outside the vault folder is ever read.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from vector_sync.core.documents import Document, ReadFailure, SourceEntry
from vector_sync.core.source import Source, SourceConfig, SourceUnavailable
from vector_sync.sources.files import (
    BadDocument,
    IgnoreLayer,
    PathRules,
    decode_text,
    note_fields,
)

SYMLINK_VERSION_PREFIX = "symlink:"
_BY_NAME = attrgetter("name")


class MarkdownConfig(SourceConfig):
    """A folder of Markdown notes (an Obsidian vault)."""

    kind: Literal["markdown"]
    path: Path = Field(description="the vault folder (relative to the config file)")
    include: list[str] = Field(["**/*.md"], description="gitignore-style globs of the notes "
                               "to sync")
    exclude: list[str] = Field([], description="globs of files to leave out")
    ignore_files: list[str] = Field([".vectorsyncignore", ".minimaignore"],
                                    description="per-folder ignore files, gitignore syntax")
    max_file_bytes: int = Field(2_000_000, gt=0, description="larger notes fail as too_large")

    def open(self, name: str, fields: Sequence[str] | None) -> Source:
        return MarkdownSource(name, self)

    def probe(self, name: str) -> None:
        """The vault's folder is there (the walk is what a sync pays, not status)."""
        MarkdownSource(name, self).checked_root()

    def where(self) -> str:
        return f"notes under {self.path}"


# --- file system helpers -------------------------------------------------------------------


def _version_hint(st: os.stat_result) -> str:
    return f"{st.st_mtime_ns}:{st.st_size}"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _resolve_symlink(path: str, root: str) -> tuple[str, str | None]:
    """The real target of `path` and, when it must not be followed, the reason why."""
    try:
        target = os.path.realpath(path, strict=True)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "", "symlink_loop"
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            return "", "broken_symlink"
        return "", "unreadable"
    return target, None if _inside(target, root) else "symlink_outside_root"


_SYMLINK_MESSAGES = {
    "symlink_loop": "the symlink points into a loop of symlinks",
    "broken_symlink": "the symlink points to a file that does not exist",
    "symlink_outside_root": "the symlink points outside the source folder, which is never read",
    "unreadable": "the symlink target cannot be accessed",
}


def _locate(root: str, doc_id: str) -> tuple[str, os.stat_result] | ReadFailure | None:
    """The real path and stat of a note inside `root`; None when it is not (or no longer) there."""
    parts = doc_id.split("/")
    if "\0" in doc_id or any(part in ("", ".", "..") for part in parts):
        return None  # not an id this source produces, so not one of its notes
    path = os.path.join(root, *parts)
    try:
        link = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None  # vanished since the scan
    except OSError as error:
        return ReadFailure(doc_id, "unreadable", "unreadable", f"cannot access: {error}")
    target, problem = _resolve_symlink(path, root)
    if problem is not None:
        return _symlink_failure(doc_id, path, problem)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return None
    except OSError as error:
        hint = _version_hint(link)
        return ReadFailure(doc_id, hint, "unreadable", f"cannot access the file: {error}")
    return (target, st) if stat.S_ISREG(st.st_mode) else None


def _symlink_failure(doc_id: str, path: str, problem: str) -> ReadFailure:
    try:
        pointer = f" ({doc_id} -> {os.readlink(path)})"
    except OSError:  # the offending link is a parent folder, not the note itself
        pointer = ""
    version = SYMLINK_VERSION_PREFIX + problem
    return ReadFailure(doc_id, version, problem, _SYMLINK_MESSAGES[problem] + pointer)


def _fields(doc_id: str, st: os.stat_result, text: str) -> dict[str, Any]:
    modified = datetime.fromtimestamp(st.st_mtime_ns // 1_000_000_000, UTC)
    return {
        **note_fields(doc_id, text),
        "path": doc_id,
        "modified_at": modified.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "size": st.st_size,
    }


# --- the source ------------------------------------------------------------------------------


class MarkdownSource:
    """Notes under `config.path`; doc_id is the note's path relative to it, with `/`."""

    scoped_reads = False

    def __init__(self, name: str, config: MarkdownConfig) -> None:
        self.name = name
        self.config = config
        self._rules = PathRules(name, config.include, config.exclude, config.ignore_files)

    # --- scan ---

    def scan(self) -> Iterator[SourceEntry]:
        root = self.checked_root()
        wants = self._rules.wants
        pending: list[tuple[str, tuple[IgnoreLayer, ...]]] = [("", ())]
        while pending:
            folder, layers = pending.pop()
            fd = self._open_folder(root, folder)
            if fd is None:
                continue
            try:  # the entries stat through `fd` (fstatat): no walk of the whole path per note
                entries = self._list_folder(root, folder, fd)
                layers = self._with_ignore_files(root, folder, entries, layers)
                subfolders = []
                for entry in entries:
                    name = entry.name
                    if entry.is_dir(follow_symlinks=False):
                        if self._rules.descends(layers, folder + name + "/"):
                            subfolders.append((folder + name + "/", layers))
                        continue
                    rel_path = folder + name
                    if not wants(layers, rel_path, name):
                        continue
                    # the per-note hot path: no helper call, DirEntry's type from the listing
                    found: SourceEntry | None
                    try:
                        if entry.is_file(follow_symlinks=False):  # false for a symlink
                            found = SourceEntry(rel_path, _version_hint(entry.stat(
                                follow_symlinks=False)))
                        elif entry.is_symlink():
                            found = self._symlink_entry(root, rel_path)
                        else:
                            continue  # sockets, FIFOs, devices
                    except FileNotFoundError:  # deleted since the folder was listed
                        continue
                    except OSError:  # e.g. a folder readable but not searchable: read() says why
                        found = SourceEntry(rel_path, "unreadable")
                    if found is not None:
                        yield found
            finally:
                os.close(fd)
            pending.extend(reversed(subfolders))  # keeps the walk in name order

    def checked_root(self) -> str:
        """The real path of the vault; a missing vault must never look like an empty one."""
        root = os.fspath(self.config.path)
        try:
            st = os.stat(root)
        except FileNotFoundError:
            raise self._unavailable(f"the folder {root} does not exist") from None
        except OSError as error:
            raise self._unavailable(
                f"the folder {root} cannot be accessed: {error.strerror}"
            ) from None
        if not stat.S_ISDIR(st.st_mode):
            raise self._unavailable(f"{root} is not a folder")
        return os.path.realpath(root)

    def _unavailable(self, problem: str) -> SourceUnavailable:
        return SourceUnavailable(f"markdown source {self.name!r}: {problem}")

    def _open_folder(self, root: str, folder: str) -> int | None:
        """A descriptor of the folder, None when it was deleted while we were scanning."""
        path = os.path.join(root, folder)
        try:
            return os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            if folder:  # its notes really are gone
                return None
            raise self._unavailable(f"the folder {path} disappeared during the scan") from None
        except OSError as error:
            raise self._cannot_list(path, error) from None

    def _list_folder(self, root: str, folder: str, fd: int) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(fd) as entries:
                return sorted(entries, key=_BY_NAME)
        except OSError as error:
            raise self._cannot_list(os.path.join(root, folder), error) from None

    def _cannot_list(self, path: str, error: OSError) -> SourceUnavailable:
        # skipping the folder would make its notes look deleted
        return self._unavailable(
            f"cannot list {path}: {error.strerror}; fix its permissions or ignore it in "
            f"{self.config.ignore_files[0] if self.config.ignore_files else 'exclude'}"
        )

    def _with_ignore_files(
        self,
        root: str,
        folder: str,
        entries: list[os.DirEntry[str]],
        layers: tuple[IgnoreLayer, ...],
    ) -> tuple[IgnoreLayer, ...]:
        present = {
            entry.name
            for entry in entries
            if entry.name in self._rules.ignore_names and not entry.is_dir(follow_symlinks=False)
        }
        files = {name: self._read_ignore_file(root, folder + name)
                 for name in self.config.ignore_files if name in present}
        try:
            layer = self._rules.layer(folder, files)
        except ValueError as error:
            raise self._unavailable(str(error)) from None
        return layers if layer is None else (*layers, layer)

    def _read_ignore_file(self, root: str, rel_path: str) -> list[str]:
        # unreadable ignore rules are fatal: guessing could sync notes meant to stay private
        path, problem = _resolve_symlink(os.path.join(root, rel_path), root)
        if problem is not None:
            raise self._unavailable(f"ignore file {rel_path}: {_SYMLINK_MESSAGES[problem]}")
        try:
            with open(path, encoding="utf-8-sig", errors="replace") as file:
                return file.read().splitlines()
        except OSError as error:
            raise self._unavailable(
                f"cannot read ignore file {rel_path}: {error.strerror}"
            ) from None

    def _symlink_entry(self, root: str, rel_path: str) -> SourceEntry | None:
        target, problem = _resolve_symlink(os.path.join(root, rel_path), root)
        if problem is not None:
            # listed anyway, so that read() reports why the note cannot be synced
            return SourceEntry(rel_path, SYMLINK_VERSION_PREFIX + problem)
        st = os.stat(target)  # FileNotFoundError, PermissionError: handled by the caller
        if not stat.S_ISREG(st.st_mode):
            return None  # folder symlinks are never followed
        return SourceEntry(rel_path, _version_hint(st))

    # --- read ---

    def read(self, doc_ids: Iterable[str]) -> Iterator[Document | ReadFailure]:
        # a vault gone since the scan must not make every note look deleted
        root = self.checked_root()
        for doc_id in doc_ids:
            result = self._read_one(root, doc_id)
            if result is not None:
                yield result

    def _read_one(self, root: str, doc_id: str) -> Document | ReadFailure | None:
        located = _locate(root, doc_id)
        if not isinstance(located, tuple):
            return located
        path, st = located
        version = _version_hint(st)
        try:
            text = decode_text(self._load_bytes(path, st))
            return Document(doc_id, version, _fields(doc_id, st, text))
        except BadDocument as bad:
            return ReadFailure(doc_id, version, bad.error_code, bad.message)

    def _load_bytes(self, path: str, st: os.stat_result) -> bytes:
        limit = self.config.max_file_bytes
        if st.st_size > limit:
            raise BadDocument(
                "too_large",
                f"the file is {st.st_size} bytes, over the limit of {limit} bytes (max_file_bytes)",
            )
        try:
            # O_NOFOLLOW: the path was checked to be inside the root, so it must not turn into
            # a symlink now; O_NONBLOCK: a FIFO swapped in must not hang the sync
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as file:
                raw = file.read(limit + 1)
        except OSError as error:
            raise BadDocument("unreadable", f"cannot read the file: {error.strerror}") from None
        if len(raw) > limit:
            raise BadDocument(
                "too_large",
                f"the file grew past the limit of {limit} bytes (max_file_bytes) while being read",
            )
        return raw
