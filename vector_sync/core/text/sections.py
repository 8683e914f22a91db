"""Markdown as the chunker sees it: sections, each a heading path and the blocks of source
text under it (paragraphs, lists, tables, code fences...), grouped into segments that no chunk
crosses (one per level-1/2 heading). markdown-it finds the headings and blocks, so a `#`
line inside a code fence is code; the text itself is kept as the source has it."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from markdown_it import MarkdownIt

# block structure only: inline parsing would cost time and we keep the source text anyway
_MARKDOWN = MarkdownIt("commonmark").enable("table").disable(["inline", "text_join"])
_NEWLINES = re.compile(r"\r\n?")


@dataclass(frozen=True, slots=True)
class Heading:
    level: int
    title: str

    @property
    def line(self) -> str:
        return f"{'#' * self.level} {self.title}"


Context = tuple[Heading, ...]


@dataclass(frozen=True, slots=True)
class Block:
    text: str
    prose: bool  # paragraphs are cut by sentences first; code, lists, tables by lines


@dataclass(slots=True)
class Section:
    context: Context  # the enclosing headings, its own last
    segment: int  # sections of different level-1/2 headings never share a chunk
    blocks: list[Block] = field(default_factory=list)


def normalized(markdown: str) -> str:
    # as markdown-it normalizes, so that its line numbers match our lines
    return _NEWLINES.sub("\n", markdown).replace("\0", "\ufffd")


def _headings_and_blocks(markdown: str) -> Iterator[Heading | Block]:
    """Top-level headings and blocks in document order, as source text."""
    lines = markdown.split("\n")
    tokens = _MARKDOWN.parse(markdown)
    covered = 0
    for index, token in enumerate(tokens):
        if token.level != 0 or token.nesting < 0 or token.map is None:
            continue
        first, last = token.map
        yield from _unparsed_lines(lines[covered:first])
        covered = max(covered, last)
        if token.type == "heading_open":
            title = " ".join(tokens[index + 1].content.split())
            if title:
                yield Heading(int(token.tag[1:]), title)
        elif token.type != "hr":  # a rule carries no text
            text = "\n".join(lines[first:last]).rstrip()
            if text.strip():
                yield Block(text, prose=token.type == "paragraph_open")
    yield from _unparsed_lines(lines[covered:])


def _unparsed_lines(lines: list[str]) -> Iterator[Block]:
    """Text markdown-it yields no token for (link reference definitions): kept, not lost."""
    for paragraph in "\n".join(lines).split("\n\n"):
        if paragraph.strip():
            yield Block(paragraph.strip("\n").rstrip(), prose=False)


def parse_sections(markdown: str) -> list[Section]:
    stack: list[Heading] = []
    sections = [Section((), 0)]
    for item in _headings_and_blocks(markdown):
        if isinstance(item, Block):
            sections[-1].blocks.append(item)
            continue
        while stack and stack[-1].level >= item.level:
            stack.pop()
        stack.append(item)
        segment = sections[-1].segment + int(item.level <= 2)
        sections.append(Section(tuple(stack), segment))
    return _without_redundant_empties(sections)


def _without_redundant_empties(sections: list[Section]) -> list[Section]:
    """Drops text-less sections whose heading the next section's path carries anyway."""
    return [
        section
        for section, following in zip(sections, [*sections[1:], None], strict=True)
        if section.blocks or (section.context and not _extends(following, section.context))
    ]


def _extends(section: Section | None, context: Context) -> bool:
    return section is not None and section.context[: len(context)] == context


def segments(sections: list[Section]) -> Iterator[list[Section]]:
    run: list[Section] = []
    for section in sections:
        if run and run[0].segment != section.segment:
            yield run
            run = []
        run.append(section)
    if run:
        yield run


def common_prefix(contexts: Sequence[Context]) -> Context:
    shortest = min(contexts, key=len)
    for depth, heading in enumerate(shortest):
        if any(context[depth] != heading for context in contexts):
            return shortest[:depth]
    return shortest


def _shared_depth(first: Context, second: Context) -> int:
    return len(common_prefix([first, second]))


def run_lines(run: list[Section], path: Context) -> Iterator[str]:
    """The body of packed sections: the headings below `path` as lines, then the blocks."""
    previous = path
    for section in run:
        for heading in section.context[_shared_depth(previous, section.context) :]:
            yield heading.line
        for block in section.blocks:
            yield block.text
        previous = section.context
