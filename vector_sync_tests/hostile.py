"""A hostile vault, generated: file names and contents picked the way production picks them.

`write_hostile_vault(root)` returns {relative path: what must happen} where the outcome is
"synced" or the error code the document must fail with. Used by test_hostile_input.py;
`python -m vector_sync_tests.hostile DIR` writes one to look at.
"""

from __future__ import annotations

import subprocess
import sys
import unicodedata
from pathlib import Path

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


if __name__ == "__main__":
    for rel, outcome in write_hostile_vault(Path(sys.argv[1])).items():
        print(f"{outcome:<16}{rel!r}")
