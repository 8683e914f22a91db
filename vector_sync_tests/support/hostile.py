"""Hostile input, generated: file names, contents and MongoDB documents picked the way
production picks them.

`write_hostile_vault(root)` returns {relative path: what must happen} where the outcome is
"synced" or the error code the document must fail with; `hostile_mongo_documents()` returns
documents with the same kind of outcomes. Used by test_hostile_input.py;
`python -m vector_sync_tests.support.hostile DIR` writes a vault to look at.
"""

from __future__ import annotations

import math
import subprocess
import sys
import unicodedata
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bson import Binary, Code, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex
from bson.datetime_ms import DatetimeMS
from bson.timestamp import Timestamp

BODY = "# A note\n\nSome ordinary words about an ordinary subject.\n"


def _billion_laughs(levels: int = 9) -> str:
    """Each anchor a list of eight aliases of the one before: 8**9 strings once expanded."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 8) + "]")
    return "---\n" + "\n".join(lines) + "\n---\n" + BODY


BILLION_LAUGHS = _billion_laughs()
OBJECT_TAG = ("---\ntitle: !!python/object/apply:os.system ['touch /tmp/vector_sync_pwned']\n"
              "---\n" + BODY)
DEEP_LEVELS = 1000


def write_hostile_vault(root: Path) -> dict[str, str]:
    root.mkdir(parents=True, exist_ok=True)
    outcomes: dict[str, str] = {}

    def note(rel: str, data: str | bytes, outcome: str = "synced") -> None:
        path = root / rel
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        outcomes[rel] = outcome

    for name in ("comma, in name.md", "pipe | in name.md", "new\nline.md", "quote \" ' `.md",
                 "-leading-dash.md", "--double-dash.md", "tab\tname.md", "emoji 🦆.md",
                 "percent %s %n.md", "back\\slash.md", " leading space.md"):
        note(name, BODY)
    note(unicodedata.normalize("NFC", "café.md"), BODY)
    note(unicodedata.normalize("NFD", "café.md"), BODY)  # a different file, the same look
    deep = root
    for _ in range(DEEP_LEVELS):  # one level at a time: mkdir(parents=True) recurses
        deep = deep / "d"
        deep.mkdir(exist_ok=True)
    note("/".join(["d"] * DEEP_LEVELS) + "/deep.md", BODY)
    note("billion laughs.md", BILLION_LAUGHS, "bad_frontmatter")
    note("object tag.md", OBJECT_TAG, "bad_frontmatter")
    note("nul bytes.md", "# Nul\n\nbefore\x00after\n", "binary")
    note("latin1.md", "caf\xe9 au lait\n".encode("latin-1"), "invalid_utf8")
    sparse = root / "sparse 1 GB.md"
    with sparse.open("wb") as out:
        out.truncate(1 << 30)  # a 1 GB file that takes no disk
    outcomes["sparse 1 GB.md"] = "too_large"
    note("becomes a folder.md", BODY)
    return outcomes


def remove_deep_folders(root: Path) -> None:
    """Delete the 1,000-level chain with `rm -rf`, which walks it without recursing:
    shutil.rmtree (and so pytest's own clean-up of old temporary folders) recurses once per
    level and overflows Python's stack."""
    subprocess.run(["rm", "-rf", str(root / "d")], check=True)


def replace_file_by_folder(root: Path) -> None:
    """Between two syncs: the note becomes a folder of the same name holding a note."""
    (root / "becomes a folder.md").unlink()
    (root / "becomes a folder.md").mkdir()
    (root / "becomes a folder.md" / "inside.md").write_text(BODY)


MONGO_LEVELS = 100  # MongoDB's own nesting limit
MONGO_MAX_BYTES = 16 * 1024 * 1024  # MongoDB's largest document


def every_bson_type() -> dict[str, Any]:
    """One value of each BSON type (and edge values of some) that a server stores."""
    return {
        "double": 1.5, "nan": math.nan, "inf": -math.inf, "string": "text \x00 with a NUL",
        "object": {"a": 1}, "array": [1, "two", [3]], "objectid": ObjectId(),
        "binary": Binary(b"\x00\xff"), "md5": Binary(b"0123456789abcdef", 5),
        "user_binary": Binary(b"u", 128), "uuid": uuid.UUID(int=7),
        "legacy_uuid": Binary(uuid.UUID(int=8).bytes, 3), "bool": False,
        "date": datetime(2024, 2, 29, 23, 59, 59, 999000, tzinfo=UTC),
        "year_one": DatetimeMS(-62_135_596_800_000), "null": None, "regex": Regex("^a.*$", "ims"),
        "dbref": DBRef("other", ObjectId(), "db"), "code": Code("function () { return 1; }"),
        "code_with_scope": Code("f(x)", {"x": 1}), "int32": -(2**31),
        "timestamp": Timestamp(1_700_000_000, 1), "int64": Int64(2**63 - 1),
        "decimal": Decimal128("1.000000000000000000000000000000001"),
        "decimal_nan": Decimal128("NaN"), "decimal_inf": Decimal128("-Infinity"),
        "min": MinKey(), "max": MaxKey(),
    }


def _nested(levels: int) -> dict[str, Any]:
    value: Any = "the bottom of a deep document"
    for level in range(levels - 1, 0, -1):  # the document itself is the first level
        value = {f"level{level}": value}
    return value


def hostile_mongo_documents() -> list[tuple[dict[str, Any], str]]:
    """(document, outcome) pairs for a collection synced with `embed: [name, body]` and
    `payload: [meta]`; the outcome is "synced", "no_points" (nothing to embed: recorded,
    nothing in Qdrant) or the error code of its failure."""
    ordinary = "An ordinary tool for ordinary work."
    return [
        ({"_id": "every type", "name": "Every BSON type", "body": every_bson_type(),
          "meta": every_bson_type()}, "synced"),
        ({"_id": "deep", "name": "Deep", "body": _nested(MONGO_LEVELS),
          "meta": _nested(MONGO_LEVELS - 1)}, "synced"),
        ({"_id": "odd keys", "name": "Odd keys", "body": {"a.b": "dotted", "$dollar": "sign",
          "": "empty", "name": "shadow"}, "meta": {"x.y": 1, "$z": 2}}, "synced"),
        ({"_id": {"compound": [1, "two"]}, "name": "A compound id", "body": ordinary},
         "synced"),
        ({"_id": Binary(b"\x01\x02", 0), "name": "A binary id", "body": ordinary}, "synced"),
        ({"_id": Decimal128("12.50"), "name": "A decimal id", "body": ordinary}, "synced"),
        ({"_id": "wrong types", "name": 12345, "body": [{"k": None}, True, 3.25]}, "synced"),
        ({"_id": "16 MB", "name": "Huge", "body": "x" * (MONGO_MAX_BYTES - 200)}, "too_large"),
        ({"_id": "nothing to embed", "meta": "no name, no body"}, "no_points"),
    ]


if __name__ == "__main__":
    for rel, outcome in write_hostile_vault(Path(sys.argv[1])).items():
        print(f"{outcome:<16}{rel!r}")
