"""The keys of a `kind: git` source. Everything in the package reads these; the face
(`GitConfig`) adds what opens and watches the source."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from vector_sync.core.secrets import mask_url
from vector_sync.core.source import SourceConfig

# what `git check-ref-format --branch` refuses, in short
_BAD_BRANCH = re.compile(r"^[-/.]|\.\.|//|/\.|@\{|[\x00-\x20~^:?*\[\\\x7f]|\.lock(/|$)|[/.]$")


class GitSettings(SourceConfig):
    """The keys of a git source (`GitConfig`, the face, adds open() and look())."""

    kind: Literal["git"]
    repo: str = Field(min_length=1, description="a local repository path, or a URL to clone")
    branch: str = Field("main", min_length=1, description="the branch whose head is synced")
    include: list[str] = Field(["**/*.md"], description="gitignore-style globs of the files "
                               "to sync")
    exclude: list[str] = Field([], description="globs of files to leave out")
    ignore_files: list[str] = Field([".vectorsyncignore"], description="per-folder ignore "
                                    "files in the tree, gitignore syntax")
    max_file_bytes: int = Field(2_000_000, gt=0, description="larger files fail as too_large")
    last_author: bool = Field(False, description="add each file's last author (one git log pass)")
    clone_dir: Path | None = Field(None, description="where a URL repo is cloned; default "
                                   "<state.dir>/git/<source>")
    fetch_timeout_s: int = Field(300, gt=0, description="how long a fetch or ls-remote may take")

    @model_validator(mode="after")
    def _repo_and_branch_usable(self) -> GitSettings:
        if self.repo.startswith("-"):
            raise ValueError("repo must not start with '-'")
        if _BAD_BRANCH.search(self.branch) or self.branch == "@":
            raise ValueError(f"branch {self.branch!r} is not a valid Git branch name")
        return self

    def where(self) -> str:
        return f"branch {self.branch} of {mask_url(self.repo)}"
