"""Markdown vault source: one document per note file, frontmatter and Obsidian-style metadata.

`scan()` only lists and stats files; `read()` decodes, parses frontmatter and derives the
title, tags, aliases and wikilinks. Nothing outside the vault folder is ever read.
"""

from __future__ import annotations

import base64
import codecs
import errno
import os
import re
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from operator import attrgetter
from pathlib import PurePosixPath
from typing import Any

import yaml
from frontmatter.default_handlers import YAMLHandler
from markdown_it import MarkdownIt
from markdown_it.token import Token
from pathspec import GitIgnoreSpec, PathSpec

from vector_sync.config import ConfigError, MarkdownSourceConfig
from vector_sync.core.documents import Document, ReadFailure, SourceEntry
from vector_sync.sources.base import SourceUnavailable

SYMLINK_VERSION_PREFIX = "symlink:"

# text_join would merge escapes (`\#not-a-tag`) into plain text; keeping them apart lets the
# tag and link scanners see the backslash.
_MARKDOWN = MarkdownIt("commonmark").enable("table").disable("text_join")
_YAML = YAMLHandler()
_INLINE_TAG = re.compile(r"(?<!\S)#([\w/-]+)")
_WIKILINK = re.compile(r"\[\[([^\[\]]+)\]\]")
_TAG_SEPARATORS = re.compile(r"[,\s]+")
_BY_NAME = attrgetter("name")


class BadDocument(Exception):
    """A file that exists but cannot become a Document; turned into a ReadFailure."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


# --- path matching -------------------------------------------------------------------------


def compile_globs(patterns: Sequence[str], setting: str) -> PathSpec:
    try:
        return PathSpec.from_lines("gitignore", patterns)
    except ValueError as error:
        raise ConfigError(f"{setting}: {error}") from None


@dataclass(frozen=True, slots=True)
class IgnoreLayer:
    """The ignore files of one folder; their patterns are relative to that folder."""

    folder: str  # relative path with a trailing "/", "" for the root
    spec: GitIgnoreSpec

    def decision(self, rel_path: str) -> bool | None:
        """True: ignored, False: re-included by a `!pattern`, None: no pattern matched."""
        return self.spec.check_file(rel_path[len(self.folder) :]).include


def is_ignored(layers: Sequence[IgnoreLayer], rel_path: str) -> bool:
    # as in git, the ignore file closest to the path has the last word
    for layer in reversed(layers):
        decision = layer.decision(rel_path)
        if decision is not None:
            return decision
    return False


class PathRules:
    """Which files of a folder tree are documents: the `include`/`exclude` globs, the
    per-folder ignore files, and dot-folders skipped. Shared by the Markdown and Git sources;
    paths are relative, with `/`, and folders end with `/`."""

    def __init__(self, source: str, include: Sequence[str], exclude: Sequence[str],
                 ignore_files: Sequence[str]) -> None:
        self.include = compile_globs(include, f"sources.{source}.include")
        self.exclude = compile_globs(exclude, f"sources.{source}.exclude")
        self.ignore_files = list(ignore_files)
        self.ignore_names = frozenset(ignore_files)

    def descends(self, layers: Sequence[IgnoreLayer], folder: str) -> bool:
        name = folder.rstrip("/").rsplit("/", 1)[-1]
        return not name.startswith(".") and not is_ignored(layers, folder)

    def wants(self, layers: Sequence[IgnoreLayer], rel_path: str) -> bool:
        return (
            rel_path.rsplit("/", 1)[-1] not in self.ignore_names
            and self.include.match_file(rel_path)
            and not (self.exclude and self.exclude.match_file(rel_path))
            and not is_ignored(layers, rel_path)
        )

    def layer(self, folder: str, files: dict[str, list[str]]) -> IgnoreLayer | None:
        """The ignore layer of `folder` from its ignore files (name -> lines), combined in
        config order so that a later file's patterns win. ValueError on a bad pattern."""
        lines = [line for name in self.ignore_files if name in files for line in files[name]]
        if not lines:
            return None
        try:
            return IgnoreLayer(folder, GitIgnoreSpec.from_lines(lines))
        except ValueError as error:
            raise ValueError(f"bad pattern in the ignore files of /{folder}: {error}") from None


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


# --- Markdown and frontmatter ----------------------------------------------------------------


def decode_text(raw: bytes) -> str:
    """UTF-8 text (a BOM is dropped); BadDocument when empty, binary or not UTF-8."""
    bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    content = raw[bom:]
    if not content.strip():
        raise BadDocument("empty", "the file is empty or contains only whitespace")
    if b"\0" in content:
        offset = bom + content.index(b"\0")
        raise BadDocument("binary", f"binary content: NUL byte at byte offset {offset}")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadDocument(
            "invalid_utf8", f"not valid UTF-8 ({error.reason}) at byte offset {bom + error.start}"
        ) from None
    if not text.strip():
        raise BadDocument("empty", "the file contains only whitespace")
    return text


def _split_frontmatter(text: str) -> tuple[dict[Any, Any], str]:
    """(frontmatter mapping, body); a note without a closing `---` has no frontmatter."""
    if not _YAML.detect(text):
        return {}, text
    try:
        block, body = _YAML.split(text)
    except ValueError:  # a lone `---` is a thematic break, not a frontmatter opener
        return {}, text
    first_line = text.count("\n", 0, text.find(block)) + 1
    try:
        data = _YAML.load(block)
    except (yaml.YAMLError, ValueError) as error:  # ValueError: dates such as 2026-02-30
        raise BadDocument("bad_frontmatter", _describe_yaml_error(error, first_line)) from None
    if data is None:
        return {}, body
    if not isinstance(data, dict):
        raise BadDocument(
            "bad_frontmatter",
            f"frontmatter must be a mapping of keys to values, not a {type(data).__name__}",
        )
    return data, body


def _describe_yaml_error(error: Exception, first_line: int) -> str:
    if not isinstance(error, yaml.MarkedYAMLError) or error.problem_mark is None:
        return f"frontmatter is not valid YAML: {error}"
    mark = error.problem_mark
    where = f"line {first_line + mark.line}, column {mark.column + 1}"
    context = ""
    if error.context and error.context_mark is not None:
        context = f" ({error.context} at line {first_line + error.context_mark.line})"
    return f"frontmatter is not valid YAML: {error.problem} at {where}{context}"


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_safe(item) for item in value]
    if isinstance(value, bytes):  # YAML `!!binary`
        return base64.b64encode(value).decode("ascii")
    return value


def _strings(value: Any) -> list[str]:
    """A frontmatter scalar or list as a list of non-blank strings."""
    items = value if isinstance(value, list) else [value]
    return [str(item).strip() for item in items if item is not None and str(item).strip()]


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _heading_text(inline: Token) -> str:
    parts = [
        child.content
        for child in inline.children or []
        if child.type in ("text", "text_special", "code_inline")
    ]
    return " ".join("".join(parts).split())


def _scannable_text(inline: Token) -> str:
    """Inline text as written, with code spans and HTML blanked so they yield no tags or links."""
    parts = []
    for child in inline.children or []:
        if child.type == "text":
            parts.append(child.content)
        elif child.type == "text_special":  # an escape such as `\#`: keep the backslash
            parts.append(child.markup)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif child.type in ("code_inline", "html_inline", "image"):
            parts.append(" ")
    return "".join(parts)


def _inline_tokens(tokens: Sequence[Token]) -> Iterator[Token]:
    # fenced and indented code are block tokens of their own, so they never show up here
    return (token for token in tokens if token.type == "inline")


def _title(metadata: dict[str, Any], tokens: Sequence[Token], doc_id: str) -> str:
    declared = metadata.get("title")
    if declared is not None and not isinstance(declared, dict | list) and str(declared).strip():
        return str(declared).strip()
    for index, token in enumerate(tokens[:-1]):
        if token.type == "heading_open" and (text := _heading_text(tokens[index + 1])):
            return text
    return PurePosixPath(doc_id).stem


def _frontmatter_tags(metadata: dict[str, Any]) -> list[str]:
    values = _strings(metadata.get("tags")) + _strings(metadata.get("tag"))
    words = (word for value in values for word in _TAG_SEPARATORS.split(value))
    return [tag for word in words if (tag := word.lstrip("#"))]


def _inline_tags(tokens: Sequence[Token]) -> list[str]:
    tags = []
    for token in _inline_tokens(tokens):
        for match in _INLINE_TAG.finditer(_scannable_text(token)):
            tag = match.group(1).strip("/")
            if re.search(r"[^\W\d]", tag):  # `#2026` or `#1` is a number, not a tag
                tags.append(tag)
    return tags


def _wikilinks(tokens: Sequence[Token]) -> list[str]:
    links = []
    for token in _inline_tokens(tokens):
        for match in _WIKILINK.finditer(_scannable_text(token)):
            # `[[target#heading|alias]]`; in tables the pipe is escaped as `\|`
            target = match.group(1).split("|", 1)[0].split("#", 1)[0].rstrip("\\").strip()
            if target:
                links.append(target)
    return links


def trimmed_body(text: str) -> str:
    return text.lstrip("\r\n").rstrip()


def note_fields(doc_id: str, text: str) -> dict[str, Any]:
    """A note's frontmatter keys overlaid with title, tags, aliases, links and body.
    Raises BadDocument for bad frontmatter."""
    raw_metadata, body = _split_frontmatter(text)
    metadata = _json_safe(raw_metadata)
    body = trimmed_body(body)
    tokens = _MARKDOWN.parse(body)
    return {
        **metadata,
        "title": _title(metadata, tokens, doc_id),
        "tags": _dedupe(_frontmatter_tags(metadata) + _inline_tags(tokens)),
        "aliases": _dedupe(_strings(metadata.get("aliases")) + _strings(metadata.get("alias"))),
        "links": _dedupe(_wikilinks(tokens)),
        "body": body,
    }


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

    def __init__(self, name: str, config: MarkdownSourceConfig) -> None:
        self.name = name
        self.config = config
        self._rules = PathRules(name, config.include, config.exclude, config.ignore_files)

    # --- scan ---

    def scan(self) -> Iterator[SourceEntry]:
        root = self._checked_root()
        pending: list[tuple[str, tuple[IgnoreLayer, ...]]] = [("", ())]
        while pending:
            folder, layers = pending.pop()
            entries = self._list_folder(root, folder)
            layers = self._with_ignore_files(root, folder, entries, layers)
            subfolders = []
            for entry in entries:
                rel_path = folder + entry.name
                if entry.is_dir(follow_symlinks=False):
                    if self._rules.descends(layers, rel_path + "/"):
                        subfolders.append((rel_path + "/", layers))
                elif self._rules.wants(layers, rel_path):
                    found = self._entry(root, entry, rel_path)
                    if found is not None:
                        yield found
            pending.extend(reversed(subfolders))  # keeps the walk in name order

    def _checked_root(self) -> str:
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

    def _list_folder(self, root: str, folder: str) -> list[os.DirEntry[str]]:
        path = os.path.join(root, folder)
        try:
            with os.scandir(path) as entries:
                return sorted(entries, key=_BY_NAME)
        except FileNotFoundError:
            if folder:  # deleted while we were scanning: its notes really are gone
                return []
            raise self._unavailable(f"the folder {path} disappeared during the scan") from None
        except OSError as error:
            # skipping the folder would make its notes look deleted
            raise self._unavailable(
                f"cannot list {path}: {error.strerror}; fix its permissions or ignore it in "
                f"{self.config.ignore_files[0] if self.config.ignore_files else 'exclude'}"
            ) from None

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

    def _entry(self, root: str, entry: os.DirEntry[str], rel_path: str) -> SourceEntry | None:
        try:
            if entry.is_symlink():
                return self._symlink_entry(root, entry.path, rel_path)
            if not entry.is_file(follow_symlinks=False):
                return None  # sockets, FIFOs, devices
            return SourceEntry(rel_path, _version_hint(entry.stat(follow_symlinks=False)))
        except FileNotFoundError:  # deleted since the folder was listed
            return None
        except OSError:  # e.g. a folder readable but not searchable: read() says why
            return SourceEntry(rel_path, "unreadable")

    def _symlink_entry(self, root: str, path: str, rel_path: str) -> SourceEntry | None:
        target, problem = _resolve_symlink(path, root)
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
        root = self._checked_root()
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
