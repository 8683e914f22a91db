"""Atlassian Document Format (the JSON of Jira Cloud's REST v3 descriptions and comments) as
the text a reader sees, in the light Markdown the chunker understands.

Headings become `## Heading` (the chunker cuts at them), code blocks fenced code with their
language, lists `- item` / `1. item`, quotes `> line`, tables `cell | cell` rows. Marks are
dropped (bold and italic read the same as plain text) except inline code, kept in backticks.
A link reads as its text, a mention as the name shown (`@Ada Lovelace`), an emoji as itself,
a date as YYYY-MM-DD, a status lozenge as its label, a smart link as its URL. Attachments
and macros without a body have no text. An unknown node reads as the text inside it, so a
new node type degrades to its words rather than failing the issue.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

# nodes whose children are blocks, read in order (containers with nothing of their own)
_CONTAINERS = {"doc", "layoutSection", "layoutColumn", "bodiedExtension", "panel",
               "multiBodiedExtension", "extensionFrame", "tableCell", "tableHeader",
               "listItem", "taskItem", "decisionItem"}
_NO_TEXT = {"media", "mediaGroup", "mediaSingle", "mediaInline", "extension",
            "inlineExtension", "placeholder", "rule", "caption"}


class InvalidAdf(ValueError):
    """A value that is not an ADF document (the issue fails with invalid_issue)."""


def adf_to_text(document: Any) -> str:
    """The text of an ADF document; "" for None (an empty description)."""
    if document is None:
        return ""
    if not isinstance(document, Mapping) or not isinstance(document.get("type"), str):
        raise InvalidAdf(f"not an ADF document: {str(document)[:80]!r}")
    return "\n\n".join(b for b in _blocks(document) if b.strip()).strip()


def _children(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = node.get("content")
    if not isinstance(content, list):
        return []
    return [child for child in content if isinstance(child, Mapping)]


def _attrs(node: Mapping[str, Any]) -> Mapping[str, Any]:
    attrs = node.get("attrs")
    return attrs if isinstance(attrs, Mapping) else {}


def _blocks(node: Mapping[str, Any]) -> list[str]:
    """A block node as Markdown blocks (paragraphs, separated by blank lines when joined)."""
    kind = node.get("type")
    if kind in _NO_TEXT:
        return []
    if kind in _CONTAINERS:
        return [b for child in _children(node) for b in _blocks(child)]
    if kind == "paragraph":
        return [_inline(node)]
    if kind == "heading":
        level = _attrs(node).get("level")
        level = level if isinstance(level, int) and 1 <= level <= 6 else 2
        text = _inline(node).strip()
        return [f"{'#' * level} {text}"] if text else []
    if kind == "codeBlock":
        language = _attrs(node).get("language")
        fence = "```" + (language if isinstance(language, str) else "")
        code = "".join(_plain(child) for child in _children(node)).strip("\n")
        return [f"{fence}\n{code}\n```"]
    if kind in ("bulletList", "orderedList", "taskList", "decisionList"):
        return ["\n".join(_list(node))]
    if kind == "blockquote":
        quoted = "\n\n".join(b for child in _children(node) for b in _blocks(child))
        return ["\n".join(f"> {line}" if line else ">" for line in quoted.splitlines())]
    if kind in ("expand", "nestedExpand"):
        title = _attrs(node).get("title")
        inner = [b for child in _children(node) for b in _blocks(child)]
        return ([title] if isinstance(title, str) and title.strip() else []) + inner
    if kind == "table":
        return ["\n".join(_row(row) for row in _children(node))]
    if kind in ("blockCard", "embedCard"):
        url = _attrs(node).get("url")
        return [url] if isinstance(url, str) else []
    if kind == "text" or kind in _INLINE:  # inline content where a block was expected
        return [_inline({"content": [node]})]
    # an unknown block: its children, whichever kind they are
    children = _children(node)
    if children and all(child.get("type") in _INLINE or child.get("type") == "text"
                        for child in children):
        return [_inline(node)]
    return [b for child in children for b in _blocks(child)]


def _list(node: Mapping[str, Any], depth: int = 0) -> list[str]:
    """The lines of a list; nested lists are indented under their item."""
    lines: list[str] = []
    start = _attrs(node).get("order")
    number = start if isinstance(start, int) else 1
    for item in _children(node):
        marker = f"{number}. " if node.get("type") == "orderedList" else "- "
        number += 1
        indent = "  " * depth
        first = True
        if item.get("type") in ("taskItem", "decisionItem"):  # inline content directly
            lines.append(f"{indent}{marker}{_inline(item).strip()}")
            continue
        for child in _children(item):
            if child.get("type") in ("bulletList", "orderedList", "taskList"):
                lines.extend(_list(child, depth + 1))
                continue
            text = "\n".join(_blocks(child))
            for line in text.splitlines() or [""]:
                lines.append(f"{indent}{marker}{line}" if first else f"{indent}  {line}")
                first = False
        if first:  # an empty item
            lines.append(f"{indent}{marker}".rstrip())
    return lines


def _row(row: Mapping[str, Any]) -> str:
    cells = [" ".join(" ".join(_blocks(cell)).split()) for cell in _children(row)]
    return " | ".join(cells)


# --- inline nodes ----------------------------------------------------------------------------

_INLINE = {"hardBreak", "mention", "emoji", "inlineCard", "date", "status", "mediaInline",
           "inlineExtension", "placeholder"}


def _inline(node: Mapping[str, Any]) -> str:
    return "".join(_inline_node(child) for child in _children(node))


def _inline_node(node: Mapping[str, Any]) -> str:
    kind = node.get("type")
    attrs = _attrs(node)
    if kind == "text":
        text = node.get("text")
        if not isinstance(text, str):
            return ""
        marks = node.get("marks")
        if isinstance(marks, list) and any(isinstance(m, Mapping) and m.get("type") == "code"
                                           for m in marks):
            return f"`{text}`"
        return text
    if kind == "hardBreak":
        return "\n"
    if kind == "mention":
        text = attrs.get("text")
        return text if isinstance(text, str) and text else "@someone"
    if kind == "emoji":
        text = attrs.get("text") or attrs.get("shortName")
        return text if isinstance(text, str) else ""
    if kind == "inlineCard":
        url = attrs.get("url")
        return url if isinstance(url, str) else ""
    if kind == "date":
        return _date(attrs.get("timestamp"))
    if kind == "status":
        text = attrs.get("text")
        return text if isinstance(text, str) else ""
    if kind in _NO_TEXT:
        return ""
    return _inline(node)  # an unknown inline node: the text inside it


def _date(timestamp: Any) -> str:
    """ADF dates are milliseconds since the epoch (as a string), UTC."""
    try:
        return datetime.fromtimestamp(int(timestamp) / 1000, UTC).strftime("%Y-%m-%d")
    except (TypeError, ValueError, OverflowError, OSError):
        return ""


def _plain(node: Mapping[str, Any]) -> str:
    """The literal text of a code block's content (marks never apply inside code)."""
    if node.get("type") == "text":
        text = node.get("text")
        return text if isinstance(text, str) else ""
    if node.get("type") == "hardBreak":
        return "\n"
    return "".join(_plain(child) for child in _children(node))
