"""Confluence storage format (the XHTML a page is saved as, with `ac:` macros and `ri:`
resource identifiers) as the text a reader of the page sees.

Headings stay Markdown headings (the chunker cuts at them), code macros and preformatted
blocks become fenced code with their text untouched, lists become "- " / "1. " items, tables
become pipe rows, links become their text, and every other macro keeps the text of its body
(an info panel, an expand) or nothing when it has none a reader sees (a table of contents,
an anchor). No markup is left.
"""

from __future__ import annotations

import html.entities
import re
from collections.abc import Iterator

from lxml import etree

NAMESPACES = {"ac": "http://atlassian.com/content",
              "ri": "http://atlassian.com/resource/identifier",
              "at": "http://atlassian.com/template"}
PREFIX = {uri: prefix for prefix, uri in NAMESPACES.items()}
_ENTITY = re.compile(r"&([A-Za-z][A-Za-z0-9]*);")
_XML_ENTITIES = {"amp", "lt", "gt", "quot", "apos"}
_SPACES = re.compile(r"[ \t\r\n\u00a0]+")
BREAK = "\u2028"  # a <br/>: a line break, where the source's own newlines are only spaces

HEADINGS = {f"h{n}": n for n in range(1, 7)}
BLOCKS = {"p", "div", "blockquote", "ul", "ol", "li", "table", "pre", "hr", "section",
          "ac:layout", "ac:layout-section", "ac:layout-cell", "ac:rich-text-body",
          "ac:task-list", "ac:structured-macro", "ac:adf-extension", *HEADINGS}
# macros whose body is not prose (or that have none): nothing of them is text
SILENT_MACROS = {"toc", "anchor", "children", "pagetree", "attachments", "recently-updated",
                 "contentbylabel", "livesearch", "jira", "gallery", "toc-zone"}
CODE_MACROS = {"code", "noformat"}


class StorageError(ValueError):
    """Storage format that cannot be read at all."""


def storage_to_text(storage: str) -> str:
    """The reader's text of a page's storage format."""
    if not storage.strip():
        return ""
    document = _entities_as_numbers(storage)
    wrapped = ("<root " + " ".join(f'xmlns:{p}="{u}"' for p, u in NAMESPACES.items()) + ">"
               f"{document}</root>")
    parser = etree.XMLParser(recover=True, resolve_entities=False, no_network=True,
                             remove_comments=True, remove_pis=True)
    try:
        root = etree.fromstring(wrapped.encode("utf-8"), parser)
    except etree.XMLSyntaxError as error:
        raise StorageError(f"the page's storage format cannot be parsed: {error}") from None
    if root is None:
        raise StorageError("the page's storage format cannot be parsed")
    text = "\n\n".join(b for b in _blocks(root) if b.strip())
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _entities_as_numbers(text: str) -> str:
    """HTML's named entities (&nbsp;, &mdash;), which XML does not know, as numbers."""
    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in _XML_ENTITIES or name not in html.entities.name2codepoint:
            return match.group(0)
        return f"&#{html.entities.name2codepoint[name]};"
    return _ENTITY.sub(number, text)


def _name(element: etree._Element) -> str:
    tag = element.tag
    if not isinstance(tag, str):
        return ""
    if tag.startswith("{"):
        uri, _, local = tag[1:].partition("}")
        return f"{PREFIX.get(uri, 'x')}:{local}"
    return tag.lower()


def _attribute(element: etree._Element, name: str) -> str:
    prefix, _, local = name.partition(":")
    return element.get(f"{{{NAMESPACES[prefix]}}}{local}" if local else name) or ""


def _is_block(element: etree._Element) -> bool:
    name = _name(element)
    if name == "ac:structured-macro":
        return _attribute(element, "ac:name") not in ("status", "anchor")
    return name in BLOCKS


# --- blocks ----------------------------------------------------------------------------------


def _blocks(container: etree._Element) -> Iterator[str]:
    """The blocks of a container's children: runs of inline content become paragraphs."""
    run: list[str] = [container.text or ""]
    for child in container:
        if _is_block(child):
            paragraph = _clean("".join(run))
            if paragraph:
                yield paragraph
            yield from _block(child)
            run = [child.tail or ""]
        else:
            run += [_inline(child), child.tail or ""]
    paragraph = _clean("".join(run))
    if paragraph:
        yield paragraph


def _block(element: etree._Element) -> Iterator[str]:
    name = _name(element)
    if name in HEADINGS:
        heading = _clean(_inline_content(element))
        if heading:
            yield "#" * HEADINGS[name] + " " + heading
    elif name in ("ul", "ol", "ac:task-list"):
        yield _list(element)
    elif name == "table":
        yield _table(element)
    elif name == "pre":
        yield _fence("".join(element.itertext()), "")
    elif name == "blockquote":
        yield "\n".join("> " + line if line else ">" for block in _blocks(element)
                        for line in (block + "\n").splitlines()).rstrip("\n>")
    elif name == "hr":
        return
    elif name == "ac:structured-macro":
        yield from _macro(element)
    elif name == "ac:adf-extension":
        fallback = element.find("ac:adf-fallback", NAMESPACES)
        if fallback is not None:
            yield from _blocks(fallback)
    else:  # p, div, li's own blocks, layouts, rich-text bodies
        yield from _blocks(element)


def _macro(element: etree._Element) -> Iterator[str]:
    macro = _attribute(element, "ac:name")
    if macro in SILENT_MACROS:
        return
    if macro in CODE_MACROS:
        body = element.find("ac:plain-text-body", NAMESPACES)
        language = next((_clean("".join(p.itertext())) for p in element.findall(
            "ac:parameter", NAMESPACES) if _attribute(p, "ac:name") == "language"), "")
        yield _fence("".join(body.itertext()) if body is not None else "", language)
        return
    title = next((_clean("".join(p.itertext())) for p in element.findall(
        "ac:parameter", NAMESPACES) if _attribute(p, "ac:name") == "title"), "")
    if title:  # a panel's or an expand's title is shown above its body
        yield title
    for part in element:
        if _name(part) == "ac:rich-text-body":
            yield from _blocks(part)
        elif _name(part) == "ac:plain-text-body":
            yield _fence("".join(part.itertext()), "")


def _fence(code: str, language: str) -> str:
    code = code.strip("\n")
    ticks = "```"
    while ticks in code:
        ticks += "`"
    return f"{ticks}{language}\n{code}\n{ticks}"


def _list(element: etree._Element) -> str:
    lines = []
    ordered = _name(element) == "ol"
    items = [c for c in element if _name(c) in ("li", "ac:task")]
    for number, item in enumerate(items, 1):
        if _name(item) == "ac:task":
            status = item.find("ac:task-status", NAMESPACES)
            done = status is not None and (status.text or "").strip() == "complete"
            body = item.find("ac:task-body", NAMESPACES)
            blocks = list(_blocks(body)) if body is not None else []
            marker = "- [x] " if done else "- [ ] "
        else:
            blocks = list(_blocks(item))
            marker = f"{number}. " if ordered else "- "
        text = "\n".join(blocks)
        indent = " " * len(marker)
        first, *rest = (text or " ").split("\n")
        lines.append(marker + first + "".join(
            "\n" + (indent + line if line else "") for line in rest))
    return "\n".join(line.rstrip() for line in lines)


def _table(element: etree._Element) -> str:
    rows = []
    header_rows = 0
    for row in element.iter("tr"):
        cells = [c for c in row if _name(c) in ("td", "th")]
        rows.append([" ".join(_blocks(c)).replace("\n", " ").replace("|", "/") for c in cells])
        if len(rows) == 1 and cells and all(_name(c) == "th" for c in cells):
            header_rows = 1
    if not rows:
        return ""
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    if header_rows:
        lines.insert(1, "| " + " | ".join("---" for _ in rows[0]) + " |")
    return "\n".join(lines)


# --- inline ----------------------------------------------------------------------------------


def _inline(element: etree._Element) -> str:
    """What a reader sees of an inline element (its tail not included)."""
    name = _name(element)
    if name == "br":
        return BREAK
    if name in ("ac:image", "ac:emoticon", "ac:placeholder", "ac:parameter", "ri:user"):
        return _attribute(element, "ac:emoji-fallback") if name == "ac:emoticon" else ""
    if name == "time":
        return element.get("datetime") or ""
    if name == "ac:link":
        body = element.find("ac:link-body", NAMESPACES)
        if body is None:
            body = element.find("ac:plain-text-link-body", NAMESPACES)
        if body is not None:
            return _inline_content(body)
        for target in element:
            for attribute in ("ri:content-title", "ri:filename", "ri:value"):
                if _attribute(target, attribute):
                    return _attribute(target, attribute)
        return ""
    if name == "ac:structured-macro":  # inline macros: a status lozenge says its title
        if _attribute(element, "ac:name") == "status":
            return next((_clean("".join(p.itertext())) for p in element.findall(
                "ac:parameter", NAMESPACES) if _attribute(p, "ac:name") == "title"), "")
        return ""
    return _inline_content(element)


def _inline_content(element: etree._Element) -> str:
    parts = [element.text or ""]
    for child in element:
        parts += [_inline(child), child.tail or ""]
    return "".join(parts)


def _clean(text: str) -> str:
    """Whitespace as a browser shows it: runs collapsed, line breaks (<br/>) kept."""
    lines = [_SPACES.sub(" ", line).strip() for line in text.split(BREAK)]
    return "\n".join(line for line in lines if line)
