"""Jira wiki markup (the text of Data Center's REST v2 descriptions and comments) as the text
a reader sees, in the light Markdown the chunker understands: the same shapes as adf.py.

`h2. Title` becomes `## Title`, `{code:java}...{code}` and `{noformat}` fenced code,
`{quote}` and `bq.` quoted lines, `* item` / `# item` list items, `||head||` and `|cell|`
table rows `cell | cell`. Links read as their text (`[the guide|https://...]` → `the guide`),
mentions as `@name`, `{{monospace}}` as inline code; emphasis markers (`*bold*`, `_em_`,
`-strike-`, `+under+`, `^sup^`, `~sub~`, `??cite??`), `{color}`, `{panel}`, anchors and
images leave no trace. Code is copied as it is written.
"""

from __future__ import annotations

import re

_CODE = re.compile(r"\{(code|noformat)(?::([^}]*))?\}(.*?)\{\1\}", re.DOTALL | re.IGNORECASE)
_QUOTE = re.compile(r"\{quote\}(.*?)\{quote\}", re.DOTALL | re.IGNORECASE)
_PANEL_OPEN = re.compile(r"\{panel(?::([^}]*))?\}", re.IGNORECASE)
# macros that only wrap or decorate text: the markers go, what they wrap stays
_DECORATION = re.compile(r"\{(?:color|panel|anchor|toc|section|column|expand)(?::[^}]*)?\}",
                         re.IGNORECASE)
_HEADING = re.compile(r"^\s*h([1-6])\.\s*(.*)$")
_BLOCKQUOTE = re.compile(r"^\s*bq\.\s*(.*)$")
_LIST = re.compile(r"^\s*([*#-]+)\s+(.*)$")
_RULE = re.compile(r"^\s*-{4,}\s*$")
_IMAGE = re.compile(r"!([^!\s|][^!|\n]*)(?:\|[^!\n]*)?!")
_MENTION = re.compile(r"\[~(?:accountid:)?([^\]]+)\]")
_LINK = re.compile(r"\[([^\]|\n]*)\|([^\]\n]+)\]")
_BARE_LINK = re.compile(r"\[([#^]?)([^\]|\n\s][^\]|\n]*)\]")
_MONOSPACE = re.compile(r"\{\{(.+?)\}\}")
_ESCAPE = re.compile(r"\\([*_+\-^~?{}\[\]|!#])")
_LINE_BREAK = re.compile(r"(?<!\\)\\\\")
# emphasis: a marker touching text inside, and not a letter or digit outside
_EMPHASIS = [re.compile(rf"(?<![\w{m}]){m}(?=\S)(.+?)(?<=\S){m}(?![\w{m}])")
             for m in (r"\*", "_", r"\+", r"\^", "~", "-")]
_CITATION = re.compile(r"\?\?(?=\S)(.+?)(?<=\S)\?\?")
_CODE_HOLDER = "\x00code{}\x00"


def wiki_to_text(markup: str | None) -> str:
    """The text of Jira wiki markup; "" for None (an empty description)."""
    if not markup:
        return ""
    codes: list[str] = []

    def keep_code(match: re.Match[str]) -> str:
        # held aside so no rule below touches what is inside; on lines of its own
        codes.append(_fence(match.group(2) or "", match.group(3)))
        return "\n" + _CODE_HOLDER.format(len(codes) - 1) + "\n"

    text = _CODE.sub(keep_code, markup.replace("\r\n", "\n"))
    text = _QUOTE.sub(lambda m: "\n" + _quoted(m.group(1)) + "\n", text)
    text = _PANEL_OPEN.sub(lambda m: "\n" + _param(m.group(1) or "", "title") + "\n", text)
    text = _DECORATION.sub("", text)
    lines = [_line(line.rstrip()) for line in text.split("\n")]
    text = "\n".join(line.rstrip() for line in lines if line is not None)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    for number, code in enumerate(codes):
        text = text.replace(_CODE_HOLDER.format(number), code)
    return text


def _fence(params: str, code: str) -> str:
    language = params.split("|", 1)[0].strip() if params and "=" not in \
        params.split("|", 1)[0] else _param(params, "language")
    return f"```{language}\n{code.strip(chr(10))}\n```"


def _param(params: str, name: str) -> str:
    for part in params.split("|"):
        key, _, value = part.partition("=")
        if key.strip().lower() == name:
            return value.strip()
    return ""


def _quoted(text: str) -> str:
    inner = wiki_to_text(text)
    return "\n".join(f"> {line}" if line else ">" for line in inner.splitlines())


def _line(line: str) -> str | None:
    """One line of markup as text; None drops it (a horizontal rule)."""
    if line.startswith("\x00") or line.startswith(">"):  # held code, an already quoted line
        return line
    if _RULE.match(line):
        return None
    if heading := _HEADING.match(line):
        return f"{'#' * int(heading.group(1))} {_inline(heading.group(2))}".rstrip()
    if quote := _BLOCKQUOTE.match(line):
        return f"> {_inline(quote.group(1))}"
    if line.lstrip().startswith("|"):
        return _table_row(line)
    if item := _LIST.match(line):
        markers = item.group(1)
        # "-" alone is a list item; a run such as "--" is a dash in the text
        if not (set(markers) == {"-"} and len(markers) > 1):
            bullet = "1. " if markers[-1] == "#" else "- "
            return "  " * (len(markers) - 1) + bullet + _inline(item.group(2))
    return _inline(line)


def _table_row(line: str) -> str:
    protected = _LINK.sub(lambda m: m.group(1) or m.group(2), line)  # a link's | is not a cell
    cells = [cell.strip() for cell in re.split(r"\|\|?", protected.strip())]
    return " | ".join(_inline(cell) for cell in cells if cell)


def _inline(text: str) -> str:
    text = _IMAGE.sub("", text)
    text = _MENTION.sub(lambda m: "@" + m.group(1).strip(), text)
    text = _LINK.sub(lambda m: m.group(1).strip() or m.group(2).strip(), text)
    text = _BARE_LINK.sub(lambda m: m.group(2), text)
    monospace: list[str] = []

    def keep(match: re.Match[str]) -> str:
        monospace.append(f"`{match.group(1)}`")
        return f"\x01{len(monospace) - 1}\x01"

    text = _MONOSPACE.sub(keep, text)
    for pattern in _EMPHASIS:
        text = pattern.sub(r"\1", text)
    text = _CITATION.sub(r"\1", text)
    text = _LINE_BREAK.sub("\n", text)
    text = _ESCAPE.sub(r"\1", text)
    return re.sub(r"\x01(\d+)\x01", lambda m: monospace[int(m.group(1))], text)
