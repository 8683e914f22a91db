"""Real Git repositories in temporary folders, driven with the git CLI (shared by the Git
source tests). Commands run without the user's or the system's git config."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from pathlib import Path

ENV = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
       "GIT_AUTHOR_NAME": "Ann Author", "GIT_AUTHOR_EMAIL": "ann@example.com",
       "GIT_COMMITTER_NAME": "Ann Author", "GIT_COMMITTER_EMAIL": "ann@example.com",
       "LC_ALL": "C"}


def git(*args: str | Path, author: str | None = None) -> str:
    env = {**ENV, "GIT_AUTHOR_NAME": author} if author else ENV
    done = subprocess.run(["git", *map(str, args)], env=env, capture_output=True, text=True)
    if done.returncode:
        raise AssertionError(f"git {' '.join(map(str, args))}: {done.stderr}")
    return done.stdout.strip()


class GitRepo:
    """A working repository (or a bare one) on branch main."""

    def __init__(self, path: Path, bare: bool = False, init: bool = True) -> None:
        self.path = path
        if init:
            git("init", "--quiet", "-b", "main", *(["--bare"] if bare else []), path)

    def git(self, *args: str | Path, author: str | None = None) -> str:
        return git("-C", self.path, *args, author=author)

    def write(self, rel: str, content: str | bytes) -> Path:
        path = self.path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    def commit(self, message: str = "change", files: dict[str, str | bytes] | None = None,
               remove: tuple[str, ...] = (), author: str | None = None) -> str:
        """Write `files`, delete `remove`, commit everything; returns the new head."""
        for rel, content in (files or {}).items():
            self.write(rel, content)
        for rel in remove:
            (self.path / rel).unlink()
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", message, author=author)
        return self.head()

    def head(self, ref: str = "main") -> str:
        return self.git("rev-parse", ref)

    def blob(self, rel: str, rev: str = "main") -> str:
        return self.git("rev-parse", f"{rev}:{rel}")

    def name_status(self, old: str, new: str = "main") -> Counter[str]:
        """Counts of A, M, D as `git diff --no-renames --name-status` lists them."""
        listed = self.git("diff", "--no-renames", "--name-status", old, new)
        return Counter(line.split("\t", 1)[0] for line in listed.splitlines())

    def files(self, rev: str = "main") -> dict[str, str]:
        """Path -> text of every file in the commit's tree."""
        paths = self.git("ls-tree", "-r", "--name-only", rev).splitlines()
        return {path: self.git("show", f"{rev}:{path}") for path in paths}
