"""Replacing a file whole or not at all: a reader (another step, a crashed run's successor)
sees the previous file or the new one, never half of one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write the new file to; when the block ends, the
    file written there replaces `path` in one rename. If the block fails (a full disk, a
    failing writer), the temporary file is removed and `path` stays as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # hidden, and per process: two processes writing the same file never share a temporary
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_atomically(path: Path, text: str) -> None:
    """`path` replaced by `text`, whole or not at all."""
    with atomic_write(path) as temporary:
        temporary.write_text(text)
