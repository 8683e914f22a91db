"""Chunking with the real all-MiniLM-L6-v2 token counter: budget, structure, overlap, no loss."""

from __future__ import annotations

import random
import re
from collections.abc import Callable

import pytest

from vector_sync.core.text.chunking import Chunk, chunk_document, chunker_fingerprint
from vector_sync.core.text.model_files import default_model_dir
from vector_sync.core.text.tokens import token_counter

Counter = Callable[[str], int]
PREAMBLE = "title: Sourdough basics\ntags: bread, baking"
FILLER = "the starter needs flour and water every single day to stay alive"


@pytest.fixture(scope="module")
def count() -> Counter:
    return token_counter(default_model_dir())


def chunk(
    count: Counter,
    markdown: str,
    *,
    max_tokens: int = 256,
    overlap: int = 32,
    preamble: str = PREAMBLE,
) -> list[Chunk]:
    return chunk_document(
        preamble, markdown, count_tokens=count, max_tokens=max_tokens, overlap_tokens=overlap
    )


def body(c: Chunk) -> str:
    """The chunk text after its header (preamble and path lines never hold a blank line)."""
    return c.text.split("\n\n", 1)[1] if "\n\n" in c.text else ""


def assert_within_budget(count: Counter, chunks: list[Chunk], max_tokens: int) -> None:
    sizes = [count(c.text) for c in chunks]
    assert max(sizes) <= max_tokens, f"chunk of {max(sizes)} tokens > {max_tokens}"


def assert_no_word_lost(markdown: str, chunks: list[Chunk]) -> None:
    found = {word for c in chunks for word in re.findall(r"\w+", c.text)}
    lost = [word for word in re.findall(r"\w+", markdown) if word not in found]
    assert not lost, f"{len(lost)} words lost, e.g. {lost[:5]}"


def sentences(count: int, topic: str = "s", words: int = 9) -> str:
    """Unique, numbered sentences: `topic17` names sentence 17, so losses are visible."""
    filler = " ".join(FILLER.split()[:words])
    return " ".join(f"{topic}{i} {filler}." for i in range(count))


# --- layout, small and empty documents ------------------------------------------------------


def test_fingerprint_names_version_budget_and_overlap() -> None:
    assert chunker_fingerprint(256, 32) == "md-2/256/32"


def test_exact_layout_preamble_path_blank_line_body(count: Counter) -> None:
    markdown = "# Sourdough\n\n## Feeding the starter\n\nFeed it twice a day.\n"
    chunks = chunk(count, markdown)
    assert chunks == [
        Chunk(
            f"{PREAMBLE}\nSourdough > Feeding the starter\n\nFeed it twice a day.",
            ("Sourdough", "Feeding the starter"),
        )
    ]


def test_a_title_heading_is_not_repeated_after_the_title_line(count: Counter) -> None:
    markdown = ("# Sourdough basics\n\nIntro.\n\n## Feeding\n\nFeed it.\n\n"
                "### Sourdough basics\n\nA sub-heading named like the title stays.\n")
    chunks = chunk(count, markdown, max_tokens=32, overlap=0)
    assert [c.text.split("\n\n")[0] for c in chunks] == [
        PREAMBLE, f"{PREAMBLE}\nFeeding", f"{PREAMBLE}\nFeeding > Sourdough basics"]
    assert chunks[1].heading_path == ("Sourdough basics", "Feeding")  # the full path
    # a heading that is not the title is shown as before
    assert chunk(count, "# Rye\n\nText.")[0].text == f"{PREAMBLE}\nRye\n\nText."


def test_without_preamble_or_headings_the_text_is_the_body(count: Counter) -> None:
    assert chunk(count, "Just a line.\n\nAnd another.", preamble="") == [
        Chunk("Just a line.\n\nAnd another.", ())
    ]
    assert chunk(count, "# Title\n\nText.", preamble="  ") == [Chunk("Title\n\nText.", ("Title",))]


def test_empty_inputs(count: Counter) -> None:
    assert chunk(count, "", preamble="") == []
    assert chunk(count, " \n\n \t", preamble="\n ") == []
    assert chunk(count, "", preamble=" title: Alone \n") == [Chunk("title: Alone", ())]
    assert chunk(count, "---\n\n***\n", preamble="title: Rules") == [Chunk("title: Rules", ())]


def test_small_document_is_exactly_one_chunk(count: Counter) -> None:
    markdown = (
        "# Sourdough\n\nA short note.\n\nTwo paragraphs.\n\n- flour\n- water\n\n"
        "### Ratios\n\n1:1:1 by weight.\n\n```\ncode\n```\n"
    )
    chunks = chunk(count, markdown)
    assert len(chunks) == 1
    assert chunks[0].heading_path == ("Sourdough",)
    assert body(chunks[0]) == (
        "A short note.\n\nTwo paragraphs.\n\n- flour\n- water\n\n### Ratios\n\n"
        "1:1:1 by weight.\n\n```\ncode\n```"
    )


def test_windows_line_endings_chunk_like_unix_ones(count: Counter) -> None:
    markdown = "# A\n\n" + sentences(60) + "\n\n## B\n\n```\nx = 1\n```\n"
    assert chunk(count, markdown.replace("\n", "\r\n")) == chunk(count, markdown)


# --- headings -------------------------------------------------------------------------------


def test_heading_paths_follow_nesting(count: Counter) -> None:
    markdown = (
        "Before any heading.\n\n# A\n\nIntro of A.\n\n## B\n\nText of B.\n\n"
        f"### C\n\n{sentences(80, 'c')}\n\n## D\n\nText of D.\n\n# E\n\nText of E.\n"
    )
    chunks = chunk(count, markdown, max_tokens=128, overlap=16)
    paths = [c.heading_path for c in chunks]
    assert paths[:3] == [(), ("A",), ("A", "B")]
    assert paths[-2:] == [("A", "D"), ("E",)]
    middle = paths[3:-2]
    assert len(middle) > 3 and set(middle) == {("A", "B", "C")}
    assert all(c.text.startswith(f"{PREAMBLE}\nA > B > C\n\n") for c in chunks[3:-2])


def test_hash_lines_in_code_are_not_headings(count: Counter) -> None:
    code = "```python\n# not a heading\n## nor this\nx = 1  # comment\n```"
    markdown = f"# Real\n\nText.\n\n{code}\n\n    # indented code, no heading\n\nAfter.\n"
    chunks = chunk(count, markdown)
    assert [c.heading_path for c in chunks] == [("Real",)]
    assert code in chunks[0].text
    assert "    # indented code, no heading" in chunks[0].text


def test_setext_headings_and_inline_markup_in_titles(count: Counter) -> None:
    markdown = "Title\n=====\n\nIntro.\n\nPart *one*\n----------\n\nText.\n"
    chunks = chunk(count, markdown)
    assert [c.heading_path for c in chunks] == [("Title",), ("Title", "Part *one*")]


def test_level_two_sections_never_share_a_chunk(count: Counter) -> None:
    markdown = "# Doc\n\nintro0 words.\n\n" + "".join(
        f"## Part {i}\n\npart{i}x tiny.\n\n### Sub {i}\n\nsub{i}x tiny too.\n\n"
        for i in range(1, 9)
    )
    chunks = chunk(count, markdown, max_tokens=512)
    assert len(chunks) == 9
    for c in chunks:
        owners = set(re.findall(r"(?:part|sub|intro)(\d+)x?", body(c)))
        assert len(owners) == 1, c.text


def test_small_deep_sections_pack_together_keeping_their_headings(count: Counter) -> None:
    markdown = (
        "## Tips\n\nSome tips.\n\n### Warm water\n\nUse it.\n\n#### Really\n\nYes.\n\n"
        "### Salt\n\nLater.\n"
    )
    chunks = chunk(count, markdown)
    assert chunks == [
        Chunk(
            f"{PREAMBLE}\nTips\n\nSome tips.\n\n### Warm water\n\nUse it.\n\n#### Really\n\nYes."
            "\n\n### Salt\n\nLater.",
            ("Tips",),
        )
    ]


def test_headings_without_text_are_not_lost(count: Counter) -> None:
    markdown = "# Empty\n\n# Parent\n\n## Child\n\nText.\n\n## Only heading\n\n### Deep empty\n"
    chunks = chunk(count, markdown)
    assert [c.heading_path for c in chunks] == [
        ("Empty",),
        ("Parent", "Child"),
        ("Parent", "Only heading", "Deep empty"),
    ]
    assert chunks[0].text == f"{PREAMBLE}\nEmpty"
    assert chunks[2].text == f"{PREAMBLE}\nParent > Only heading > Deep empty"


def test_long_headings_and_preamble_are_shortened_to_leave_room_for_text(count: Counter) -> None:
    long_title = " ".join(f"heading{i}" for i in range(60))
    markdown = f"# {long_title}\n\n## {long_title} two\n\n{sentences(30)}\n"
    preamble = "title: " + " ".join(f"word{i}" for i in range(200))
    for max_tokens in (32, 64, 128):
        chunks = chunk(count, markdown, max_tokens=max_tokens, overlap=4, preamble=preamble)
        assert_within_budget(count, chunks, max_tokens)
        assert all(c.text.startswith("title: word0") for c in chunks)
        assert all(c.heading_path == (long_title, f"{long_title} two") for c in chunks)
        assert_no_word_lost(sentences(30), chunks)


# --- budget and loss on long documents ------------------------------------------------------


def realistic_note() -> str:
    table = "| step | grams | note |\n|---|---|---|\n" + "\n".join(
        f"| row{i} | {i * 10} | knead{i} and fold |" for i in range(120)
    )
    code = (
        "```python\n"
        + "\n".join(
            f"# step{i} is a comment\ndef feed{i}(starter):\n    return starter + {i}"
            for i in range(150)
        )
        + "\n```"
    )
    huge_sentence = " ".join(f"huge{i} and" for i in range(700)) + " done."
    cjk = "日本語の文章です。" * 40 + "中文句子在这里。" * 40
    emoji = " ".join(f"emoji{i} 🍞🥖🔥 café naïve" for i in range(150))
    return "\n\n".join(
        [
            "Intro before headings. " + sentences(10, "intro"),
            "# Sourdough",
            sentences(40, "a"),
            "## Feeding",
            sentences(5, "b"),
            "- " + "\n- ".join(sentences(30, "list").split(". ")),
            "### Ratios",
            sentences(3, "c"),
            code,
            "### Timing",
            huge_sentence,
            "## Tables",
            table,
            "## Unicode",
            cjk,
            emoji,
            "#### Deep",
            sentences(20, "deep"),
            "# Second",
            "> " + sentences(40, "quote"),
            "[ref]: https://example.com/reference-target",
        ]
    )


@pytest.mark.parametrize("max_tokens,overlap", [(32, 0), (64, 8), (128, 16), (256, 32), (512, 64)])
def test_every_chunk_fits_and_no_word_is_lost(
    count: Counter, max_tokens: int, overlap: int
) -> None:
    markdown = realistic_note()
    chunks = chunk(count, markdown, max_tokens=max_tokens, overlap=overlap)
    assert_within_budget(count, chunks, max_tokens)
    assert_no_word_lost(markdown, chunks)
    assert all(c.text.startswith(PREAMBLE + "\n") for c in chunks)


def test_blocks_that_fit_stay_whole(count: Counter) -> None:
    code = "```python\n" + "\n".join(f"line{i} = {i}" for i in range(20)) + "\n```"
    table = "| a | b |\n|---|---|\n" + "\n".join(f"| x{i} | {i} |" for i in range(15))
    items = "\n".join(f"- item{i} to do" for i in range(15))
    markdown = "\n\n".join(
        ["# Kept", sentences(12), code, sentences(12), table, sentences(12), items, sentences(12)]
    )
    chunks = chunk(count, markdown, max_tokens=256, overlap=0)
    assert len(chunks) > 3
    for block in (code, table, items):
        assert sum(block in c.text for c in chunks) == 1


def test_long_parts_are_cut_at_sentences_then_lines_not_mid_line(count: Counter) -> None:
    wrapped = "\n".join(f"line{i} of a poem" + " without" * (i % 5) for i in range(80))
    code = "```\n" + "\n".join(f"call{i}(argument, other_argument)" for i in range(80)) + "\n```"
    for block, source_lines in ((wrapped, wrapped.split("\n")), (code, code.split("\n"))):
        chunks = chunk(count, f"# Cut\n\n{block}\n", max_tokens=96, overlap=0)
        assert len(chunks) > 3
        assert all(line in source_lines for c in chunks for line in body(c).split("\n"))
    prose = "# Cut\n\n" + sentences(60)
    for c in chunk(count, prose, max_tokens=96, overlap=0):
        assert re.fullmatch(r"(s\d+ [a-z ]+\. )*s\d+ [a-z ]+\.", body(c)), body(c)


def test_a_monster_word_and_unspaced_cjk_still_fit(count: Counter) -> None:
    cjk = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(3000))
    letters = "".join(random.Random(3).choice("abcdefghij") for _ in range(3000))
    for text in (cjk, letters, "x" * 5000):
        chunks = chunk(count, f"# Big\n\n{text}\n", max_tokens=64, overlap=8)
        assert_within_budget(count, chunks, 64)
        joined = "".join(body(c) for c in chunks)
        assert all(ch in joined for ch in set(text))


def test_budget_holds_even_when_counts_do_not_add_up(count: Counter) -> None:
    def lumpy(text: str) -> int:  # longer texts cost extra: sums of parts underestimate
        return count(text) + len(text) // 40

    markdown = realistic_note()
    for max_tokens in (48, 256):
        chunks = chunk(lumpy, markdown, max_tokens=max_tokens, overlap=max_tokens // 8)
        assert_within_budget(lumpy, chunks, max_tokens)
        assert_no_word_lost(markdown, chunks)


def test_rejects_budgets_it_cannot_honour(count: Counter) -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        chunk(count, "text", max_tokens=8)
    with pytest.raises(ValueError, match="overlap_tokens"):
        chunk(count, "text", overlap=-1)


def test_packs_small_paragraphs_instead_of_one_chunk_each(count: Counter) -> None:
    markdown = "# Notes\n\n" + "\n\n".join(f"Short note{i}." for i in range(200))
    chunks = chunk(count, markdown, max_tokens=256, overlap=0)
    assert_within_budget(count, chunks, 256)
    sizes = [count(c.text) for c in chunks]
    assert all(size > 256 * 0.8 for size in sizes[:-1])


# --- overlap --------------------------------------------------------------------------------


def shared_overlap(previous: Chunk, following: Chunk) -> str:
    """The longest start of the following body that ends the previous body."""
    before, after = body(previous), body(following)
    for length in range(min(len(before), len(after)), 0, -1):
        if before.endswith(after[:length]):
            return after[:length]
    return ""


@pytest.mark.parametrize("words", [9, 40])  # sentences shorter, then longer than the overlap
def test_following_chunks_start_with_about_overlap_tokens(count: Counter, words: int) -> None:
    filler = " ".join(["dough"] * words)
    markdown = "# Long\n\n" + " ".join(f"s{i} {filler}." for i in range(150))
    chunks = chunk(count, markdown, max_tokens=128, overlap=24)
    assert len(chunks) > 5
    for previous, following in zip(chunks, chunks[1:], strict=False):
        overlap = shared_overlap(previous, following).strip()
        tokens = count(overlap) - 2
        assert 12 <= tokens <= 24, (tokens, overlap)
        if words == 9:  # whole sentences fit the overlap: it starts at a sentence
            assert re.match(r"s\d+ ", overlap), overlap


def test_no_overlap_when_zero(count: Counter) -> None:
    markdown = "# Long\n\n" + sentences(200)
    chunks = chunk(count, markdown, max_tokens=128, overlap=0)
    seen = [re.findall(r"\bs\d+\b", body(c)) for c in chunks]
    flat = [name for names in seen for name in names]
    assert flat == [f"s{i}" for i in range(200)]  # each sentence once, in order


def test_chunks_of_separate_sections_do_not_overlap(count: Counter) -> None:
    markdown = f"## One\n\n{sentences(60, 'one')}\n\n## Two\n\n{sentences(60, 'two')}\n"
    chunks = chunk(count, markdown, max_tokens=128, overlap=32)
    for c in chunks:
        assert not (re.search(r"\bone\d", body(c)) and re.search(r"\btwo\d", body(c)))


# --- determinism, speed, random documents ---------------------------------------------------


def test_deterministic(count: Counter) -> None:
    markdown = realistic_note()
    first = chunk(count, markdown, max_tokens=128, overlap=16)
    fresh_counter = token_counter(default_model_dir())
    assert chunk(fresh_counter, markdown, max_tokens=128, overlap=16) == first
    assert chunk(count, markdown, max_tokens=128, overlap=16) == first


def test_each_text_is_counted_about_twice_not_quadratically(count: Counter) -> None:
    counted = 0

    def measuring(text: str) -> int:
        nonlocal counted
        counted += len(text)
        return count(text)

    markdown = "\n\n".join(f"## Part {i}\n\n{sentences(120, f'p{i}x')}" for i in range(10))
    chunk(measuring, markdown, max_tokens=256, overlap=32)
    assert counted < 3 * len(markdown)


def random_markdown(rng: random.Random) -> str:
    words = [
        "flour",
        "water",
        "salt",
        "levain",
        "crumb",
        "crust",
        "😀",
        "naïve",
        "日本語",
        "中文",
        "x",
        "C++",
        "e.g.",
        "3.5",
        "https://example.com/a_b",
    ]

    def sentence(length: int) -> str:
        return " ".join(rng.choice(words) for _ in range(length)) + rng.choice(".!?。 ")

    parts = []
    for index in range(rng.randint(0, 25)):
        kind = rng.random()
        tag = f"w{index}"  # a unique word per block, to see it survive
        if kind < 0.2:  # (a heading may be shortened away when the budget is tiny: no tag)
            parts.append("#" * rng.randint(1, 6) + " " + sentence(rng.randint(0, 6)))
        elif kind < 0.3:
            lines = [f"# {tag}"] + [sentence(rng.randint(1, 30)) for _ in range(rng.randint(1, 60))]
            parts.append("```\n" + "\n".join(lines) + "\n```")
        elif kind < 0.4:
            parts.append(
                "\n".join(
                    f"- {tag} {sentence(rng.randint(1, 20))}" for _ in range(rng.randint(1, 30))
                )
            )
        elif kind < 0.45:
            parts.append(
                f"| {tag} | b |\n|---|---|\n"
                + "\n".join(f"| {sentence(3)} | {i} |" for i in range(rng.randint(1, 80)))
            )
        elif kind < 0.5:
            parts.append(f"{tag} " + sentence(rng.randint(100, 600)))  # a monster sentence
        else:
            parts.append(
                f"{tag} "
                + " ".join(sentence(rng.randint(1, 40)) for _ in range(rng.randint(1, 12)))
            )
    return rng.choice(["\n\n", "\n\n\n", "\n"]).join(parts)


def test_random_documents_fit_the_budget_and_lose_nothing(count: Counter) -> None:
    rng = random.Random(20240521)
    for _ in range(100):
        markdown = random_markdown(rng)
        max_tokens = rng.choice([16, 24, 48, 96, 128, 256, 384, 512])
        overlap = rng.choice([0, max_tokens // 8, max_tokens // 3, max_tokens])
        preamble = rng.choice(["", "title: Random note", "title: " + "long " * 40])
        chunks = chunk(count, markdown, max_tokens=max_tokens, overlap=overlap, preamble=preamble)
        context = f"max_tokens={max_tokens} overlap={overlap}\n{markdown[:300]}"
        assert all(count(c.text) <= max_tokens for c in chunks), context
        tags = re.findall(r"\bw\d+\b", markdown)
        found = {tag for c in chunks for tag in re.findall(r"\bw\d+\b", c.text)}
        assert set(tags) <= found, context
        if markdown.strip() or preamble.strip():
            assert chunks, context
