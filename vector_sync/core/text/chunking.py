"""Markdown-aware chunking: cut a document into pieces that each fit the embedding model.

Chunk text layout (stable: changing it means bumping CHUNKER_VERSION)::

    text   = "\\n\\n".join(part for part in (header, body) if part)
    header = "\\n".join(part for part in (preamble.strip(), " > ".join(path)) if part)

e.g. ``"title: Sourdough\\nFeeding the starter\\n\\nFeed it twice a day."``: the path leaves
out its outermost heading when a preamble line already shows it as a value (the title heading
of a note whose `title` is embedded), so a reader never sees the title twice.
The body is Markdown source: whole blocks joined by a blank line, or a piece of one block
cut from the source as is. When the header would leave less than a quarter of the budget
for the body, the outermost headings of the path shown in the text become "…" (then the
header is cut short); `Chunk.heading_path` always keeps the full path.

Sections and packing:
- Every heading starts a section; its heading path is the stack of enclosing headings.
  markdown-it finds headings and blocks, so a ``#`` line inside a code fence is code.
- Headings of level 1-2 are hard boundaries: no chunk holds text of two such sections.
- Deeper headings (3-6) are soft: consecutive whole sections under the same level-1/2
  heading are packed into one chunk while they fit. That chunk's path is their common
  ancestor path and the sub-headings below it stay in the body as Markdown lines
  ("### Title"), so each piece of text keeps its heading and tiny sections do not each
  become a weak chunk of their own.
- A section that does not fit one chunk gets chunks of its own, with its full path. Its
  blocks (paragraph, list, table, code fence...) are packed in order up to the budget; a
  block too big alone is cut into sentences, then lines (code, lists and tables: lines
  first), then runs of words (each CJK character counts as a word), then characters, and
  the parts are packed the same way.
- Overlap: each further chunk of a split section starts with about `overlap_tokens` of the
  end of the previous chunk's body: whole sentences when they come to at least half of
  that, else words. It is capped at half the body budget so every chunk moves forward.
- A heading with no text of its own appears in the path of its sub-sections, or, when it
  has none, as a chunk (or body line) of its own: no heading is dropped.
- Titles are the heading's source with whitespace collapsed ("Part *one*"). Thematic
  breaks are dropped; lines markdown-it gives no token (link reference definitions) are
  kept as blocks. `markdown` is a body: strip front matter before calling.

Budget: block, sentence and heading sizes are counted once and summed (WordPiece counts
add up across whitespace); every chunk is then counted once and, in the rare case the sum
was off, re-packed smaller. `count_tokens(chunk.text) <= max_tokens` holds for every chunk.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from vector_sync.core.text.cutting import (
    LINE_BREAK,
    PROSE_CUTTERS,
    SENTENCE_END,
    SOURCE_CUTTERS,
    WORD_GAP,
    Cutter,
    Piece,
    cut_positions,
    joined_pieces,
    lower_bound,
    surely_over,
    take,
    uncuttable,
    with_overlap,
)
from vector_sync.core.text.sections import (
    Block,
    Context,
    Heading,
    Section,
    common_prefix,
    normalized,
    parse_sections,
    run_lines,
    segments,
)
from vector_sync.core.text.tokens import TokenCounter

CHUNKER_VERSION = "md-2"  # bump when the algorithm changes: it is part of every content hash

MIN_MAX_TOKENS = 16
_OVERLAP_WINDOW_CHARS_PER_TOKEN = 12  # overlap starts are looked for in this much text


@dataclass(frozen=True, slots=True)
class Chunk:
    text: str  # exactly what gets embedded and stored as the point's `text`
    heading_path: tuple[str, ...]  # e.g. ("Sourdough", "Feeding the starter")


def chunker_fingerprint(max_tokens: int, overlap_tokens: int) -> str:
    """What chunk texts depend on besides the document, for content hashes."""
    return f"{CHUNKER_VERSION}/{max_tokens}/{overlap_tokens}"


def chunk_document(
    preamble: str,
    markdown: str,
    *,
    count_tokens: TokenCounter,
    max_tokens: int,
    overlap_tokens: int,
) -> list[Chunk]:
    """Chunks of `markdown`, each starting with `preamble` and its heading path (see module)."""
    if max_tokens < MIN_MAX_TOKENS:
        raise ValueError(f"max_tokens must be at least {MIN_MAX_TOKENS}, got {max_tokens}")
    if overlap_tokens < 0:
        raise ValueError(f"overlap_tokens must not be negative, got {overlap_tokens}")
    chunker = _Chunker(preamble.strip(), count_tokens, max_tokens, overlap_tokens)
    chunks = chunker.chunk(normalized(markdown))
    if not chunks and chunker.preamble:
        return [chunker.chunk_of((), "")]
    return chunks


@dataclass(frozen=True, slots=True)
class _Header:
    text: str
    tokens: int


class _Chunker:
    """One document's chunking, with its counts cached."""

    def __init__(
        self, preamble: str, count: TokenCounter, max_tokens: int, overlap_tokens: int
    ) -> None:
        self.preamble = preamble
        # "title: Sourdough" -> "Sourdough": values a heading need not repeat
        self.shown = {" ".join(line.partition(": ")[2].split()) for line in preamble.split("\n")}
        self.count = count
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens
        self.fixed_tokens = count("")  # what the model adds to any text ([CLS], [SEP])
        self.min_body = max(1, max_tokens // 4)
        self.headers: dict[Context, _Header] = {}
        self.heading_tokens: dict[Heading, int] = {}
        self.block_tokens: dict[str, int] = {}

    def tokens(self, text: str) -> int:
        return self.count(text) - self.fixed_tokens if text else 0

    def chunk(self, markdown: str) -> list[Chunk]:
        chunks: list[Chunk] = []
        for segment in segments(parse_sections(markdown)):
            chunks += self.chunk_segment(segment)
        return chunks

    def chunk_of(self, context: Context, body: str) -> Chunk:
        header = self.header(context).text
        text = "\n\n".join(part for part in (header, body) if part)
        return Chunk(text, tuple(heading.title for heading in context))

    def fits(self, chunk: Chunk) -> bool:
        return self.count(chunk.text) <= self.max_tokens

    # header ---------------------------------------------------------------------------------

    def header(self, context: Context) -> _Header:
        if context not in self.headers:
            titles = [h.title for h in context]
            if titles and titles[0] in self.shown:  # the document's title: in the preamble
                titles = titles[1:]
            self.headers[context] = self.fitted_header(titles)
        return self.headers[context]

    def fitted_header(self, titles: list[str]) -> _Header:
        limit = self.max_tokens - self.fixed_tokens - self.min_body
        for dropped in range(len(titles) + 1):  # outermost headings go first
            shown = titles[dropped:]
            path = " > ".join((["…"] if dropped else []) + shown) if shown else ""
            text = "\n".join(part for part in (self.preamble, path) if part)
            tokens = self.tokens(text)
            if tokens <= limit:
                return _Header(text, tokens)
        text = self.truncated(self.preamble, limit)
        return _Header(text, self.tokens(text))

    def truncated(self, text: str, limit: int) -> str:
        """The longest start of `text` within `limit` tokens, cut between words if possible."""
        if self.tokens(text) <= limit:
            return text
        low, high = 0, len(text)  # binary search on the length: log(n) counts, rare path
        while low < high:
            middle = (low + high + 1) // 2
            if self.tokens(text[:middle]) <= limit:
                low = middle
            else:
                high = middle - 1
        word_end = max(text.rfind(" ", 0, low + 1), text.rfind("\n", 0, low + 1))
        return text[: word_end if 0 < word_end < low else low].rstrip()

    def body_budget(self, context: Context) -> int:
        return self.max_tokens - self.fixed_tokens - self.header(context).tokens

    # packing whole sections -----------------------------------------------------------------

    def chunk_segment(self, segment: list[Section]) -> list[Chunk]:
        whole = self.whole_segment_chunk(segment)
        return [whole] if whole is not None else self.packed_segment(segment)

    def whole_segment_chunk(self, segment: list[Section]) -> Chunk | None:
        """The segment as one chunk if it fits: one count, where sizing its blocks first
        and then checking the chunk would count its text twice."""
        path = common_prefix([section.context for section in segment])
        body = "\n\n".join(run_lines(segment, path))
        if surely_over(body, self.body_budget(path)):
            return None
        chunk = self.chunk_of(path, body)
        return chunk if self.fits(chunk) else None

    def packed_segment(self, segment: list[Section]) -> list[Chunk]:
        base = common_prefix([section.context for section in segment])
        budget = self.body_budget(base)
        chunks: list[Chunk] = []
        run: list[Section] = []
        run_cost = 0
        for section in segment:
            cost = self.section_cost(section, len(base), budget)
            if run and run_cost + cost > budget:
                chunks += self.chunk_run(run)
                run, run_cost = [], 0
            if cost > budget:
                chunks += self.split_section(section)
            else:
                run.append(section)
                run_cost += cost
        if run:
            chunks += self.chunk_run(run)
        return chunks

    def section_cost(self, section: Section, base_depth: int, budget: int) -> int:
        """Body tokens of a section packed with others: its heading lines (all of those below
        the segment's, which may overestimate) and its blocks."""
        headings = sum(self.heading_line_tokens(h) for h in section.context[base_depth:])
        return headings + sum(self.block_size(block, budget) for block in section.blocks)

    def heading_line_tokens(self, heading: Heading) -> int:
        if heading not in self.heading_tokens:
            self.heading_tokens[heading] = self.tokens(heading.line)
        return self.heading_tokens[heading]

    def block_size(self, block: Block, budget: int) -> int:
        """Tokens of the block, or a lower bound when that is enough to show it is over."""
        if surely_over(block.text, budget):
            return lower_bound(block.text)
        if block.text not in self.block_tokens:
            self.block_tokens[block.text] = self.tokens(block.text)
        return self.block_tokens[block.text]

    def chunk_run(self, run: list[Section]) -> list[Chunk]:
        """One chunk for consecutive whole sections, unless the summed sizes were too low."""
        path = common_prefix([section.context for section in run])
        chunk = self.chunk_of(path, "\n\n".join(run_lines(run, path)))
        if self.fits(chunk):
            return [chunk]
        if len(run) > 1:
            return self.chunk_run(run[:-1]) + self.chunk_run(run[-1:])
        return self.split_section(run[0])

    # splitting one section ------------------------------------------------------------------

    def split_section(self, section: Section) -> list[Chunk]:
        budget = self.body_budget(section.context)
        pieces = deque(self.pieces(section.blocks, budget))
        chunks: list[Chunk] = []
        previous_body = ""
        most: int | None = None  # pieces a chunk may take: set only to retry an overfull one
        use_overlap = True
        while pieces:
            overlap, overlap_tokens = "", 0
            if previous_body and use_overlap:
                target = min(self.overlap_tokens, budget // 2, budget - pieces[0].tokens)
                overlap, overlap_tokens = self.overlap(previous_body, target)
            taken = take(pieces, budget - overlap_tokens, most)
            body = with_overlap(overlap, taken[0], section.blocks,
                                joined_pieces(taken, section.blocks))
            chunk = self.chunk_of(section.context, body)
            if self.fits(chunk) or uncuttable(taken, overlap):
                chunks.append(chunk)
                previous_body, most, use_overlap = body, None, True
                continue
            # the summed sizes were too low (rare): retry with less in this chunk
            pieces.extendleft(reversed(taken))
            if len(taken) > 1:
                most = len(taken) - 1
            elif overlap:
                use_overlap = False
            else:
                pieces.extendleft(reversed(self.recut(pieces.popleft(), section.blocks, budget)))
        return chunks

    def recut(self, piece: Piece, blocks: list[Block], budget: int) -> list[Piece]:
        """Shorter pieces for one that was counted within budget but overflowed its chunk."""
        smaller = max(1, min(piece.tokens, budget) * 3 // 4)
        text = blocks[piece.block].text
        spans = self.cut(text, piece.start, piece.end, piece.tokens, smaller, SOURCE_CUTTERS)
        return [Piece(piece.block, start, end, tokens) for start, end, tokens in spans]

    def pieces(self, blocks: list[Block], budget: int) -> Iterator[Piece]:
        for index, block in enumerate(blocks):
            size = self.block_size(block, budget)
            if size <= budget:
                yield Piece(index, 0, len(block.text), size)
                continue
            cutters = PROSE_CUTTERS if block.prose else SOURCE_CUTTERS
            for start, end, tokens in self.cut(
                block.text, 0, len(block.text), size, budget, cutters
            ):
                yield Piece(index, start, end, tokens)

    def fit(
        self, text: str, start: int, end: int, budget: int, cutters: Sequence[Cutter]
    ) -> list[tuple[int, int, int]]:
        """(start, end, tokens) parts of text[start:end], each within budget."""
        part = text[start:end]
        tokens = lower_bound(part) if surely_over(part, budget) else self.tokens(part)
        if tokens <= budget:
            return [(start, end, tokens)]
        return self.cut(text, start, end, tokens, budget, cutters)

    def cut(
        self, text: str, start: int, end: int, tokens: int, budget: int, cutters: Sequence[Cutter]
    ) -> list[tuple[int, int, int]]:
        """Parts of text[start:end] (`tokens` long) cut by the first of `cutters` that finds
        a cut, each part fitted in turn (with the same or finer cutters)."""
        parts = 2 * max(2, math.ceil(tokens / budget))
        for depth, cutter in enumerate(cutters):
            cuts = cutter(text, start, end, parts)
            if cuts:
                bounds = [start, *cuts, end]
                return [
                    part
                    for part_start, part_end in zip(bounds, bounds[1:], strict=False)
                    for part in self.fit(text, part_start, part_end, budget, cutters[depth:])
                ]
        return [(start, end, tokens)]  # a single character

    def overlap(self, body: str, target: int) -> tuple[str, int]:
        """About `target` tokens from the end of `body`: whole sentences, else words."""
        if target <= 0:
            return "", 0
        window = max(0, len(body) - _OVERLAP_WINDOW_CHARS_PER_TOKEN * target)
        sentences = cut_positions(SENTENCE_END, body, window, len(body))
        starts = sorted({window, *sentences, *cut_positions(LINE_BREAK, body, window, len(body))})
        begin, tokens = len(body), 0
        for start in reversed(starts):  # sentence by sentence from the end, each counted once
            sentence, room = body[start:begin], target - tokens
            if not surely_over(sentence, room):
                size = self.tokens(sentence)
                if size <= room and (start > window or window == 0):  # `window` may cut one
                    begin, tokens = start, tokens + size
                    continue
            if 2 * tokens < target:  # whole sentences give too little: add this one's end
                words_begin, extra = self.last_words(body, start, begin, room)
                begin, tokens = words_begin, tokens + extra
            break
        return body[begin:], tokens

    def last_words(self, body: str, start: int, end: int, room: int) -> tuple[int, int]:
        """Start and size of the last words of body[start:end] that come to at most `room`
        tokens: a guess at 4 tokens per 3 words, counted, then corrected once if over."""
        cuts = cut_positions(WORD_GAP, body, start, end)
        take = min(len(cuts), room * 3 // 4)
        for _ in range(2):
            if take <= 0:
                break
            extra = self.tokens(body[cuts[-take] : end])
            if extra <= room:
                return cuts[-take], extra
            take = take * room // extra
        return end, 0
