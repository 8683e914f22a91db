"""Cutting a block's text into pieces that fit a token budget, and joining pieces back into
a chunk's body. A block too big alone is cut into sentences (prose) or lines (code, lists,
tables) first, then the other of the two, then runs of words (each CJK character counts as
a word), then characters."""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from vector_sync.core.text.sections import Block

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
# each pattern's match end is where the next part starts
LINE_BREAK = re.compile(r"\n(?:[ \t]*\n)*")
SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*\s+|[。！？]+\s*")
WORD_GAP = re.compile(rf"\s+(?=\S)|(?<=[{_CJK}])(?=\S)|(?<=\S)(?=[{_CJK}])")
_BLANK_LINES_AT_START = re.compile(r"^(?:[ \t]*\n)+")


@dataclass(frozen=True, slots=True)
class Piece:
    block: int  # index in the section's blocks
    start: int
    end: int
    tokens: int


# a cutter gives the positions inside text[start:end] where a part may begin;
# `parts` is how many parts the caller needs at least (cutters of natural units ignore it)
Cutter = Callable[[str, int, int, int], list[int]]


def cut_positions(pattern: re.Pattern[str], text: str, start: int, end: int) -> list[int]:
    return [m.end() for m in pattern.finditer(text, start, end) if start < m.end() < end]


def _line_cuts(text: str, start: int, end: int, parts: int) -> list[int]:
    return cut_positions(LINE_BREAK, text, start, end)


def _sentence_cuts(text: str, start: int, end: int, parts: int) -> list[int]:
    return cut_positions(SENTENCE_END, text, start, end)


def _word_cuts(text: str, start: int, end: int, parts: int) -> list[int]:
    # runs of words, not single words: counting each word of a monster would be slow
    cuts = cut_positions(WORD_GAP, text, start, end)
    step = max(1, math.ceil((len(cuts) + 1) / parts))
    return cuts[step - 1 :: step]


def _char_cuts(text: str, start: int, end: int, parts: int) -> list[int]:
    step = max(1, math.ceil((end - start) / parts))
    return list(range(start + step, end, step))


PROSE_CUTTERS: tuple[Cutter, ...] = (_sentence_cuts, _line_cuts, _word_cuts, _char_cuts)
SOURCE_CUTTERS: tuple[Cutter, ...] = (_line_cuts, _sentence_cuts, _word_cuts, _char_cuts)


def lower_bound(text: str) -> int:
    return len(text.split())  # subword tokenizers give every word at least one token


def surely_over(text: str, budget: int) -> bool:
    """True when a text is over budget for sure: then counting it would be wasted work."""
    return len(text) > budget and lower_bound(text) > budget


def _tidy(piece_text: str) -> str:
    return _BLANK_LINES_AT_START.sub("", piece_text).rstrip()


def take(pieces: deque[Piece], room: int, most: int | None) -> list[Piece]:
    """Consecutive pieces up to `room` tokens and `most` pieces (always at least one)."""
    taken = [pieces.popleft()]
    used = taken[0].tokens
    while pieces and (most is None or len(taken) < most) and used + pieces[0].tokens <= room:
        used += pieces[0].tokens
        taken.append(pieces.popleft())
    return taken


def uncuttable(taken: list[Piece], overlap: str) -> bool:
    """One character alone over budget: impossible while the header leaves a quarter of the
    budget, but if it happened, a chunk over budget beats looping forever."""
    return len(taken) == 1 and not overlap and taken[0].end - taken[0].start <= 1


def joined_pieces(pieces: list[Piece], blocks: list[Block]) -> str:
    """Consecutive pieces of one block are one slice of its source; blocks are paragraphs."""
    parts: list[str] = []
    first = pieces[0]
    for previous, piece in zip(pieces, [*pieces[1:], None], strict=True):
        if piece is None or piece.block != previous.block:
            parts.append(_tidy(blocks[first.block].text[first.start : previous.end]))
            first = piece if piece is not None else first
    return "\n\n".join(part for part in parts if part)


def with_overlap(overlap: str, first: Piece, blocks: list[Block], new_text: str) -> str:
    if not overlap:
        return new_text
    if not new_text:
        return overlap
    if first.start == 0:
        return f"{overlap}\n\n{new_text}"
    text, gap_start = blocks[first.block].text, first.start
    while gap_start > 0 and text[gap_start - 1].isspace():  # (slicing the block: quadratic)
        gap_start -= 1
    gap = text[gap_start : first.start]
    separator = "\n" if "\n" in gap else " " if gap else ""  # as between them in the source
    return overlap + separator + new_text
