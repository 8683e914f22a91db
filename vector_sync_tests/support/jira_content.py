"""Real prose (support/prose.py) as the Jira stand-in stores it: Markdown turned into an
Atlassian Document Format document (what Jira Cloud's REST v3 returns for a description or a
comment body, as its editor saves it) or into Jira wiki markup (what Data Center's REST v2
returns). Headings, paragraphs, emphasis, inline code, links, lists, quotes, code blocks and
tables map to their ADF nodes and marks, or to `h2.`, `*bold*`, `{{code}}`, `[text|url]`,
`* item`, `{quote}`, `{code:lang}` and `||head||` markup.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

from vector_sync_tests.support.prose import WIKILINK


@cache
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark").enable("table")


def _tree(markdown: str) -> SyntaxTreeNode:
    # [[Note|label]] wiki links of the vault read as their label in an issue
    text = WIKILINK.sub(lambda m: (m.group(2) or m.group(1)).strip(), markdown)
    return SyntaxTreeNode(_parser().parse(text))


# --- ADF ---------------------------------------------------------------------------------------


def adf(markdown: str) -> dict[str, Any]:
    """An ADF document (version 1) of `markdown`."""
    return {"type": "doc", "version": 1, "content": _adf_blocks(_tree(markdown).children)}


def adf_paragraph(text: str) -> dict[str, Any]:
    return {"type": "doc", "version": 1,
            "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}]}


def _adf_blocks(nodes: list[SyntaxTreeNode]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for node in nodes:
        kind = node.type
        if kind == "heading":
            blocks.append({"type": "heading", "attrs": {"level": int(node.tag[1])},
                           "content": _adf_inline(node.children[0])})
        elif kind == "paragraph":
            content = _adf_inline(node.children[0])
            if content:
                blocks.append({"type": "paragraph", "content": content})
        elif kind in ("fence", "code_block"):
            language = (node.info or "").strip().split(" ")[0] if kind == "fence" else ""
            blocks.append({"type": "codeBlock", "attrs": {"language": language} if language
                           else {}, "content": [{"type": "text",
                                                 "text": node.content.rstrip("\n")}]})
        elif kind in ("bullet_list", "ordered_list"):
            item = {"type": "bulletList" if kind == "bullet_list" else "orderedList",
                    "content": [{"type": "listItem", "content": _adf_blocks(li.children)}
                                for li in node.children]}
            if kind == "ordered_list":
                item["attrs"] = {"order": int(node.attrs.get("start", 1))}
            blocks.append(item)
        elif kind == "blockquote":
            blocks.append({"type": "blockquote", "content": _adf_blocks(node.children)})
        elif kind == "hr":
            blocks.append({"type": "rule"})
        elif kind == "table":
            rows = [tr for part in node.children for tr in part.children]
            blocks.append({"type": "table", "content": [
                {"type": "tableRow", "content": [
                    {"type": "tableHeader" if cell.type == "th" else "tableCell",
                     "content": [{"type": "paragraph",
                                  "content": _adf_inline(cell.children[0])
                                  if cell.children else []}]}
                    for cell in tr.children]} for tr in rows]})
    return blocks


def _adf_inline(inline: SyntaxTreeNode, marks: tuple[dict[str, Any], ...] = ()) -> list[
        dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for node in inline.children:
        if node.type == "text" and node.content:
            out.append({"type": "text", "text": node.content,
                        **({"marks": list(marks)} if marks else {})})
        elif node.type == "code_inline":
            out.append({"type": "text", "text": node.content,
                        "marks": [*marks, {"type": "code"}]})
        elif node.type in ("softbreak", "hardbreak"):
            out.append({"type": "hardBreak"} if node.type == "hardbreak" else
                       {"type": "text", "text": " "})
        elif node.type in ("strong", "em"):
            out.extend(_adf_inline(node, (*marks, {"type": node.type})))
        elif node.type == "link":
            mark = {"type": "link", "attrs": {"href": node.attrs.get("href", "")}}
            out.extend(_adf_inline(node, (*marks, mark)))
        elif node.children:
            out.extend(_adf_inline(node, marks))
    return out


# --- wiki markup ---------------------------------------------------------------------------


def wiki(markdown: str) -> str:
    """Jira wiki markup of `markdown`."""
    return "\n\n".join(_wiki_blocks(_tree(markdown).children)).strip()


def _wiki_blocks(nodes: list[SyntaxTreeNode], depth: str = "") -> list[str]:
    blocks: list[str] = []
    for node in nodes:
        kind = node.type
        if kind == "heading":
            blocks.append(f"h{node.tag[1]}. {_wiki_inline(node.children[0])}")
        elif kind == "paragraph":
            blocks.append(_wiki_inline(node.children[0]))
        elif kind in ("fence", "code_block"):
            language = (node.info or "").strip().split(" ")[0] if kind == "fence" else ""
            blocks.append(f"{{code{':' + language if language else ''}}}\n"
                          f"{node.content.rstrip(chr(10))}\n{{code}}")
        elif kind in ("bullet_list", "ordered_list"):
            marker = depth + ("*" if kind == "bullet_list" else "#")
            lines: list[str] = []
            for li in node.children:
                parts = _wiki_blocks(li.children, marker)
                first, rest = (parts[0], parts[1:]) if parts else ("", [])
                lines.append(f"{marker} {first}" if not first.startswith(marker) else first)
                lines.extend(rest)
            blocks.append("\n".join(lines))
        elif kind == "blockquote":
            blocks.append("{quote}\n" + "\n\n".join(_wiki_blocks(node.children)) + "\n{quote}")
        elif kind == "hr":
            blocks.append("----")
        elif kind == "table":
            rows = []
            for part in node.children:
                for tr in part.children:
                    bar = "||" if part.type == "thead" else "|"
                    rows.append(bar + bar.join(_wiki_inline(cell.children[0])
                                               if cell.children else " "
                                               for cell in tr.children) + bar)
            blocks.append("\n".join(rows))
    return blocks


def _wiki_inline(inline: SyntaxTreeNode) -> str:
    out: list[str] = []
    for node in inline.children:
        if node.type == "text":
            out.append(node.content)
        elif node.type == "code_inline":
            out.append("{{" + node.content + "}}")
        elif node.type in ("softbreak", "hardbreak"):
            out.append(" " if node.type == "softbreak" else "\\\\")
        elif node.type == "strong":
            out.append(f"*{_wiki_inline(node)}*")
        elif node.type == "em":
            out.append(f"_{_wiki_inline(node)}_")
        elif node.type == "link":
            out.append(f"[{_wiki_inline(node)}|{node.attrs.get('href', '')}]")
        elif node.children:
            out.append(_wiki_inline(node))
    return "".join(out)
