"""Real prose for the Atlassian stand-ins: the repository's own Markdown (README, docs/, the
example vault) split by heading into a few hundred pieces, and each piece as Confluence
storage format (XHTML with `ac:`/`ri:` macros: code blocks as the code macro, wiki links as
page links) the way Confluence's editor saves it.

`pieces()` gives the pieces (title, Markdown body, where it came from); `storage_xhtml()`
turns Markdown into storage format.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[2]
HEADING = re.compile(r"^(#{1,3})\s+(.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
WIKILINK = re.compile(r"\[\[([^\]|#]+)(?:#[^\]|]*)?(?:\|([^\]]+))?\]\]")
CDATA = re.compile(r"(<!\[CDATA\[.*?\]\]>)", re.DOTALL)


@dataclass(frozen=True)
class Piece:
    """One section of a Markdown file: a page or an issue's worth of prose."""

    title: str  # the heading (unique across pieces)
    markdown: str  # the section's text below its heading (deeper headings included)
    source: str  # the file it came from, relative to the repository ("docs/cli.md")
    parent: str  # the title of the file's first piece: the section's natural parent page


def _markdown_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")),
             *sorted((ROOT / "examples" / "vault").rglob("*.md"))]
    return [f for f in files if "templates" not in f.parts]


def _strip_front_matter(text: str) -> str:
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end != -1:
            return text[end + 5:]
    return text


def _split(text: str, fallback: str) -> list[tuple[str, str]]:
    """(heading, body) per level-1..3 heading, fences respected; text before the first
    heading goes under `fallback`."""
    sections: list[tuple[str, list[str]]] = [(fallback, [])]
    in_fence = False
    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else HEADING.match(line)
        if match:
            sections.append((match.group(2), []))
        else:
            sections[-1][1].append(line)
    return [(title, "\n".join(lines).strip()) for title, lines in sections]


@cache
def pieces() -> tuple[Piece, ...]:
    """Every section with at least a sentence of text, in file order (about 300)."""
    found: list[Piece] = []
    seen: set[str] = set()
    for path in _markdown_files():
        source = path.relative_to(ROOT).as_posix()
        parent = ""
        for title, body in _split(_strip_front_matter(path.read_text(encoding="utf-8")),
                                  path.stem):
            if len(body) < 40:
                continue
            title = re.sub(r"[`*_]", "", title).strip()
            unique, n = title, 1
            while unique.lower() in seen:
                n += 1
                unique = f"{title} ({path.stem})" if n == 2 else f"{title} ({path.stem} {n})"
            seen.add(unique.lower())
            parent = parent or unique
            found.append(Piece(unique, body, source, parent))
    return tuple(found)


# --- Markdown -> Confluence storage format -------------------------------------------------

def _code_macro(code: str, language: str) -> str:
    language_parameter = (f'<ac:parameter ac:name="language">{html.escape(language)}'
                          "</ac:parameter>") if language else ""
    code = code.replace("]]>", "]]]]><![CDATA[>")  # CDATA cannot hold its own end
    return (f'<ac:structured-macro ac:name="code" ac:schema-version="1">{language_parameter}'
            f"<ac:plain-text-body><![CDATA[{code.rstrip(chr(10))}]]></ac:plain-text-body>"
            "</ac:structured-macro>")


def _page_link(match: re.Match[str]) -> str:
    title, label = match.group(1).strip(), (match.group(2) or "").strip()
    body = (f"<ac:plain-text-link-body><![CDATA[{label}]]></ac:plain-text-link-body>"
            if label else "")
    return f'<ac:link><ri:page ri:content-title="{title}" />{body}</ac:link>'


@cache
def _renderer() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"xhtmlOut": True, "html": False}).enable("table")
    md.add_render_rule("fence", lambda self, tokens, idx, options, env: _code_macro(
        tokens[idx].content, tokens[idx].info.strip().split(" ")[0]))
    md.add_render_rule("code_block", lambda self, tokens, idx, options, env: _code_macro(
        tokens[idx].content, ""))
    return md


@cache
def storage_xhtml(markdown: str) -> str:
    """`markdown` as Confluence storage format: XHTML, code blocks as the code macro (CDATA),
    [[wiki links]] as `ac:link` page links."""
    rendered = _renderer().render(markdown)
    parts = CDATA.split(rendered)  # wiki links are not looked for inside code
    return "".join(part if part.startswith("<![CDATA[") else WIKILINK.sub(_page_link, part)
                   for part in parts)
