"""What the file-based sources share: which files of a tree are documents (include and
exclude globs, per-folder ignore files in gitignore syntax), and how a note's text becomes
fields (UTF-8 checks, front matter, title, tags, aliases, wikilinks). The Markdown source
reads a folder, the Git source a commit's tree; both use these.
"""

from __future__ import annotations

import base64
import codecs
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import PurePosixPath
from typing import Any

import yaml
from frontmatter.default_handlers import YAMLHandler
from markdown_it import MarkdownIt
from markdown_it.token import Token
from pathspec import GitIgnoreSpec, PathSpec
from pathspec.pattern import RegexPattern

from vector_sync.core.settings import ConfigError

# text_join would merge escapes (`\#not-a-tag`) into plain text; keeping them apart lets the
# tag and link scanners see the backslash.
_MARKDOWN = MarkdownIt("commonmark").enable("table").disable("text_join")
_YAML = YAMLHandler()


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader without aliases: frontmatter has no use for them, and aliases of aliases
    expand exponentially once the fields are copied (the "billion laughs" bomb)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in frontmatter",
                self.peek_event().start_mark)
        return super().compose_node(parent, index)


# libyaml's loader, when PyYAML was built with it: about ten times faster on a small
# frontmatter, with the same constructor and resolver (so the same values). It accepts some
# text the pure-Python loader refuses (tabs, a BOM or line separator inside, `?` and `!` in
# flow collections, a comment right after `|` or `>`) and composes in C, where aliases
# (`*name`) cannot be refused: only a block of printable text without those marks goes
# there. The pure-Python loader reads the rest, and any block libyaml refuses, so errors
# keep their wording.
_C_LOADER: type[Any] | None = getattr(yaml, "CSafeLoader", None)
_NOT_FOR_C = re.compile(r"[*?!%@`]|[|>][-+0-9]*#")


def _load_yaml(block: str) -> Any:
    if _C_LOADER is not None and not _NOT_FOR_C.search(block) \
            and block.replace("\n", "").isprintable():
        try:
            return yaml.load(block, Loader=_C_LOADER)
        except (yaml.YAMLError, ValueError):
            pass
    return _YAML.load(block, Loader=_NoAliasLoader)


_INLINE_TAG = re.compile(r"(?<!\S)#([\w/-]+)")
_WIKILINK = re.compile(r"\[\[([^\[\]]+)\]\]")
_TAG_SEPARATORS = re.compile(r"[,\s]+")


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


def _never(rel_path: str) -> bool:
    return False


def _always(rel_path: str) -> bool:
    return True


def _regexes(spec: PathSpec) -> list[tuple[re.Pattern[str], bool]] | None:
    """Each pattern's compiled regex and include flag, in order (blank lines and comments
    left out); None for a pattern that is not one plain str regex."""
    found = []
    for pattern in spec.patterns:
        if pattern.include is None:
            continue
        if not isinstance(pattern, RegexPattern) or not isinstance(pattern.regex, re.Pattern) \
                or not isinstance(pattern.regex.pattern, str):
            return None
        found.append((pattern.regex, pattern.include))
    return found


def path_matcher(spec: PathSpec) -> Callable[[str], object]:
    """`spec.match_file(rel_path)` (truthy or not) for paths already relative and with "/":
    its patterns' own regexes, the last matching pattern deciding, as pathspec does. Calling
    pathspec per path (normalizing, dispatching, wrapping each match) was a third of what a
    scan of 100,000 notes spent outside its system calls."""
    regexes = _regexes(spec)
    if regexes is None:
        return lambda rel_path: spec.match_file(rel_path, separators=())
    checks = [(regex.search, include) for regex, include in reversed(regexes)]
    if not checks:
        return _never
    if len(checks) == 1 and checks[0][1]:
        return checks[0][0]  # the common `**/*.md`: one regex search, no Python frame

    def matches(rel_path: str) -> bool:
        for search, include in checks:
            if search(rel_path) is not None:
                return include
        return False

    return matches


_GROUP_NAME = re.compile(r"\(\?P<\w+>")


def any_pattern_matches(spec: PathSpec) -> Callable[[str], object]:
    """A cheap first test for `spec`: falsy only when none of its patterns matches the path.
    Their regexes in one alternation (named groups unnamed: a name cannot appear twice), or,
    when they cannot be joined, a test that always says "maybe"."""
    regexes = _regexes(spec)
    if regexes is None or len({regex.flags for regex, _ in regexes}) > 1 \
            or any("(?P=" in regex.pattern for regex, _ in regexes):
        return _always
    if not regexes:
        return _never
    joined = "|".join(f"(?:{_GROUP_NAME.sub('(?:', regex.pattern)})" for regex, _ in regexes)
    try:
        return re.compile(joined, regexes[0][0].flags).search
    except re.error:
        return _always


@dataclass(frozen=True, slots=True)
class IgnoreLayer:
    """The ignore files of one folder; their patterns are relative to that folder."""

    folder: str  # relative path with a trailing "/", "" for the root
    spec: GitIgnoreSpec
    # most paths match no pattern of a layer: one regex search says so, where asking
    # pathspec costs several times more (each pattern in turn, normalizing, result objects)
    _maybe: Callable[[str], object] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_maybe", any_pattern_matches(self.spec))

    def decision(self, rel_path: str) -> bool | None:
        """True: ignored, False: re-included by a `!pattern`, None: no pattern matched."""
        path = rel_path[len(self.folder) :]
        if not self._maybe(path):
            return None
        return self.spec.check_file(path, separators=()).include


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
        self._included = path_matcher(self.include)
        self._excluded = path_matcher(self.exclude)
        self.ignore_files = list(ignore_files)
        self.ignore_names = frozenset(ignore_files)

    def descends(self, layers: Sequence[IgnoreLayer], folder: str) -> bool:
        name = folder.rstrip("/").rsplit("/", 1)[-1]
        return not name.startswith(".") and not is_ignored(layers, folder)

    def wants(self, layers: Sequence[IgnoreLayer], rel_path: str, name: str = "") -> bool:
        """Whether the file `rel_path` is a document; `name`, its last part, when known."""
        if (name or rel_path[rel_path.rfind("/") + 1 :]) in self.ignore_names:
            return False
        if not self._included(rel_path) or self._excluded(rel_path):
            return False
        return not (layers and is_ignored(layers, rel_path))

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
        data = _load_yaml(block)
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
