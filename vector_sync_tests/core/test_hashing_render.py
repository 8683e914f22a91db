"""Point ids, hashes and the rendering of embedded fields: the contracts users rely on."""

from __future__ import annotations

import random
import uuid

from vector_sync.core.documents import MISSING, get_path, nested_subset
from vector_sync.core.hashing import NAMESPACE, content_hash, payload_hash, point_id
from vector_sync.core.text.render import LONG_TEXT_CHARS, render


def test_point_ids_follow_the_documented_uuid5_formula():
    assert point_id("notes", "a/b.md", 3) == str(uuid.uuid5(NAMESPACE, "notes/a/b.md#3"))
    assert str(NAMESPACE) == "0b9c6a3e-52f1-4c1e-9a57-7d3c2f6b8e41"  # never changes
    assert point_id("notes", "a.md", 0) != point_id("notes", "a.md", 1)
    assert point_id("notes", "a.md", 0) != point_id("other", "a.md", 0)


def test_point_ids_equal_uuid5_for_every_variant_nibble_and_any_name():
    rng = random.Random(7)
    alphabet = "ab/. #é日\n,|\"-"
    names = [("notes", "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))),
              rng.randint(0, 10_000)) for _ in range(5_000)]
    assert {point_id(*n)[19] for n in names} == set("89ab")  # every variant digit was tried
    assert all(point_id(s, d, i) == str(uuid.uuid5(NAMESPACE, f"{s}/{d}#{i}"))
               for s, d, i in names)


def test_content_hash_covers_text_model_and_chunker():
    base = content_hash("m|md-1/256/32", "title: A", "body")
    assert base == content_hash("m|md-1/256/32", "title: A", "body")
    assert base != content_hash("m|md-1/128/32", "title: A", "body")
    assert base != content_hash("other|md-1/256/32", "title: A", "body")
    assert base != content_hash("m|md-1/256/32", "title: A", "body!")
    assert content_hash("v", "ab", "c") != content_hash("v", "a", "bc")


def test_payload_hash_ignores_key_order_but_not_values():
    assert payload_hash({"a": 1, "b": [1, 2]}) == payload_hash({"b": [1, 2], "a": 1})
    assert payload_hash({"a": 1}) != payload_hash({"a": 2})
    assert payload_hash({"tags": ["x", "y"]}) != payload_hash({"tags": ["y", "x"]})


def test_dotted_paths_read_and_keep_nesting():
    doc = {"imdb": {"rating": 7.4, "votes": 10}, "year": 1999}
    assert get_path(doc, "imdb.rating") == 7.4
    assert get_path(doc, "imdb.missing") is MISSING and get_path(doc, "year.x") is MISSING
    assert nested_subset(doc, ["imdb.rating", "year", "nope"]) == {
        "imdb": {"rating": 7.4},
        "year": 1999,
    }


def test_render_puts_short_fields_in_the_preamble_and_long_text_in_the_body():
    long_text = "word " * (LONG_TEXT_CHARS // 4)
    fields = {
        "title": "Heat",
        "cast": ["Al Pacino", "Robert De Niro"],
        "plot": long_text,
        "empty": "",
        "imdb": {"rating": 8.3},
    }
    preamble, body = render(fields, ["title", "cast", "empty", "missing", "imdb", "plot"])
    assert preamble.splitlines() == [
        "title: Heat",
        "cast: Al Pacino, Robert De Niro",
        "imdb: rating: 8.3",
    ]
    assert body == long_text.strip()
    assert render({"other": "x"}, ["title", "body"]) == ("", "")
    assert render({"body": "line one\nline two"}, ["body"]) == ("", "line one\nline two")
