"""Git plumbing for the Git source: running git, reading a repository's refs, trees and
blobs, cloning and fetching a URL repository. Every command runs with the repository's git
dir, never a working tree, and never waits for a prompt.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import IO

from vector_sync.core.secrets import mask_url, scrub, url_secrets
from vector_sync.core.source import SourceUnavailable
from vector_sync.sources.git.settings import GitSettings

log = logging.getLogger(__name__)

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|^[^/:@]+@[^/:]+:")


def is_repo_url(repo: str) -> bool:
    """`scheme://...` or scp-like `user@host:path`: cloned; anything else is a local path."""
    return bool(_URL.match(repo))

_KINDS = {"120000": "symlink", "160000": "submodule"}  # any other file mode is a blob
_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
_TIMEOUT_S = 300  # for local commands; fetches use fetch_timeout_s

# --- running git ---------------------------------------------------------------------------


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    # C locale: stable messages to match; no prompt may ever wait for a user
    env = {**os.environ, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", **(extra or {})}
    if "GIT_SSH" not in env:
        env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    return env


def _git(source: str, args: Sequence[str], timeout: float = _TIMEOUT_S,
         env: dict[str, str] | None = None,
         action: str = "a git command") -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", *args], stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, env=env or _env(), check=False)
    except FileNotFoundError:
        raise unavailable(source, "the git command is not installed") from None
    except subprocess.TimeoutExpired:
        raise unavailable(source, f"{action} took longer than {timeout} s") from None


def unavailable(source: str, problem: str) -> SourceUnavailable:
    return SourceUnavailable(f"git source {source!r}: {problem}")


def _stderr(done: subprocess.CompletedProcess[bytes], url: str | None = None) -> str:
    text = " ".join(done.stderr.decode("utf-8", "replace").split())
    return scrub(text, url_secrets(url)) if url else text


def short(sha: str) -> str:
    return sha[:12]


def _z_tokens(stream: IO[bytes]) -> Iterator[bytes]:
    """The NUL-separated records of a `-z` output stream, as they arrive."""
    rest = b""
    while chunk := os.read(stream.fileno(), 65536):  # what has arrived, without waiting for more
        *tokens, rest = (rest + chunk).split(b"\0")
        yield from tokens
    if rest:
        yield rest


# --- the repository --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """A file of the pinned tree."""

    mode: str
    sha: str
    size: int

    @property
    def kind(self) -> str:
        return _KINDS.get(self.mode, "blob")

    @property
    def version(self) -> str:
        return f"{self.kind}:{self.sha}"


@dataclass(frozen=True)
class Repo:
    """A repository's object store, addressed by its git dir."""

    git_dir: str
    where: str  # the repo as configured (credentials masked), for messages
    source: str

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        done = _git(self.source, ["--git-dir", self.git_dir, *args])
        if check and done.returncode:
            raise unavailable(self.source, f"git {args[0]} failed in {self.where}: "
                               f"{_stderr(done)}")
        return done

    def head(self, branch: str) -> tuple[str, int]:
        """The branch's commit and its committer time (seconds since 1970)."""
        ref = f"refs/heads/{branch}"
        listed = self.run("for-each-ref", "--format=%(refname)%00%(objectname)%00"
                          "%(objecttype)%00%(committerdate:unix)", ref).stdout
        for line in listed.decode("utf-8", "replace").splitlines():
            name, sha, kind, when = line.split("\0")
            if name == ref and kind == "commit":
                return sha, int(when)
        branches = self.run("for-each-ref", "--count=10", "--format=%(refname:short)",
                            "refs/heads/").stdout.decode("utf-8", "replace").split()
        raise missing_branch(self.source, branch, self.where, branches)

    def tree(self, commit: str) -> Iterator[tuple[str, Entry]]:
        listed = self.run("ls-tree", "-r", "-z", "--long", "--full-tree", commit).stdout
        for record in listed.split(b"\0"):
            if not record:
                continue
            meta, _, raw_path = record.partition(b"\t")
            mode, _type, sha, size = meta.decode("ascii").split()
            try:
                path = raw_path.decode("utf-8")
            except UnicodeDecodeError:  # a doc_id must be text: such a file cannot be synced
                log.warning("git source %s: skipping %r, its path is not UTF-8", self.source,
                            raw_path)
                continue
            yield path, Entry(mode, sha, 0 if size == "-" else int(size))

    def diff(self, old: str, new: str) -> Iterator[tuple[str, str]]:
        """(status, path) of the files that differ: A, D or M (a type change counts as M;
        a change of the executable bit alone is not listed)."""
        raw = self.run("diff-tree", "-r", "-z", "--no-renames", "--no-abbrev", old, new).stdout
        records = raw.split(b"\0")
        for meta, path in zip(records[0::2], records[1::2], strict=False):
            _old_mode, _new_mode, old_sha, new_sha, status = meta[1:].decode("ascii").split()
            if status == "M" and old_sha == new_sha:
                continue
            yield ("M" if status == "T" else status), path.decode("utf-8", "replace")

    def has_commit(self, sha: str) -> bool:
        return bool(_SHA.fullmatch(sha)) and not self.run(
            "cat-file", "-e", f"{sha}^{{commit}}", check=False).returncode

    def is_ancestor(self, old: str, new: str) -> bool:
        return not self.run("merge-base", "--is-ancestor", old, new, check=False).returncode

    def is_shallow(self) -> bool:
        return self.run("rev-parse", "--is-shallow-repository").stdout.strip() == b"true"


def missing_branch(source: str, branch: str, where: str,
                    branches: Sequence[str] | None = None) -> SourceUnavailable:
    """`branches`: the repository's branches when known (a local repository)."""
    found = "" if branches is None else \
        f" (its branches: {', '.join(branches)})" if branches else " (it has no branches)"
    return unavailable(source, f"branch {branch!r} does not exist in {where}{found}; "
                        f"check sources.{source}.branch. Nothing was synced or deleted")


def local_repo(source: str, path: str) -> Repo:
    if not os.path.isdir(path):
        raise unavailable(source, f"the repository folder {path} does not exist")
    # no looking upwards: a folder inside some other repository is not a repository
    ceiling = {"GIT_CEILING_DIRECTORIES": os.path.dirname(os.path.abspath(path))}
    done = _git(source, ["-C", path, "rev-parse", "--absolute-git-dir"], env=_env(ceiling))
    if done.returncode:
        raise unavailable(source, f"{path} is not a Git repository (neither the top folder of "
                           f"a working tree nor a bare repository); check sources.{source}.repo: "
                           f"{_stderr(done)}")
    return Repo(done.stdout.decode().strip(), path, source)


def fetched_clone(source: str, config: GitSettings) -> Repo:
    """The bare clone of a URL repo in `clone_dir`, with the branch just fetched."""
    if config.clone_dir is None:
        raise ValueError(f"sources.{source}.clone_dir is not set (load the config with "
                         "load_config, which defaults it)")
    clone = str(config.clone_dir)
    if not os.path.exists(os.path.join(clone, "HEAD")):
        _init_bare(source, clone)
    return _fetch_branch(source, config, clone)


def fetched_copy(source: str, config: GitSettings) -> Repo:
    """For a dry run, which leaves the clone in `clone_dir` as it is: the branch fetched into
    a temporary bare repository that borrows the clone's objects (git alternates), so only
    what the clone lacks is downloaded. The folder is removed with the returned Repo."""
    scratch = tempfile.mkdtemp(prefix="vector-sync-git-")
    try:
        _init_bare(source, scratch)
        objects = os.path.join(str(config.clone_dir), "objects")
        if config.clone_dir is not None and os.path.isdir(objects):
            with open(os.path.join(scratch, "objects", "info", "alternates"), "w") as file:
                file.write(os.path.abspath(objects) + "\n")
        repo = _fetch_branch(source, config, scratch)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    weakref.finalize(repo, shutil.rmtree, scratch, ignore_errors=True)
    return repo


def _init_bare(source: str, git_dir: str) -> None:
    done = _git(source, ["init", "--bare", "--quiet", git_dir])  # creates missing folders
    if done.returncode:
        raise unavailable(source, f"cannot create the clone in {git_dir}: {_stderr(done)}")


def _fetch_branch(source: str, config: GitSettings, git_dir: str) -> Repo:
    where = mask_url(config.repo)
    ref = f"refs/heads/{config.branch}"
    # `+`: a force-pushed branch is taken as it now is; detection sees the rewrite
    done = _git(source, ["--git-dir", git_dir, "fetch", "--quiet", "--no-tags",
                         "--no-write-fetch-head", "--end-of-options", config.repo,
                         f"+{ref}:{ref}"], timeout=config.fetch_timeout_s,
                action=f"fetching {where} (fetch_timeout_s)")
    if "couldn't find remote ref" in done.stderr.decode("utf-8", "replace"):
        raise missing_branch(source, config.branch, where)
    if done.returncode:
        raise unavailable(source, f"cannot fetch {where}: {_stderr(done, config.repo)}. Nothing "
                           "was synced or deleted")
    return Repo(git_dir, where, source)


def head_commit(source: str, config: GitSettings) -> str:
    """The branch head's commit id, cheap enough for a sensor tick: the branch ref of a local
    repo, `git ls-remote` for a URL repo (nothing is fetched, the clone is not touched). No
    blob is read and Qdrant is not opened. Raises SourceUnavailable."""
    if not is_repo_url(config.repo):
        return local_repo(source, config.repo).head(config.branch)[0]
    ref = f"refs/heads/{config.branch}"
    done = _git(source, ["ls-remote", "--end-of-options", config.repo, ref],
                timeout=config.fetch_timeout_s, action=f"reaching {mask_url(config.repo)}")
    if done.returncode:
        raise unavailable(source, f"cannot reach {mask_url(config.repo)}: "
                           f"{_stderr(done, config.repo)}")
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        sha, _, name = line.partition("\t")
        if name == ref:
            return sha
    raise missing_branch(source, config.branch, mask_url(config.repo))


# --- reading objects -----------------------------------------------------------------------


class Blobs:
    """One `git cat-file --batch` process. Objects are asked for one at a time, so neither
    pipe can fill up while the other end waits."""

    def __init__(self, repo: Repo) -> None:
        self._repo = repo
        self._process: subprocess.Popen[bytes] | None = None
        # git's complaints, e.g. about a corrupt object: a file, so that a chatty git can
        # never block on a full pipe nobody reads
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by __exit__)

    def __enter__(self) -> Blobs:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._process is not None:
            _stop(self._process)
        self._stderr.close()

    def get(self, sha: str) -> bytes:
        process = self._process or self._start()
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(sha.encode("ascii") + b"\n")
            process.stdin.flush()
        except BrokenPipeError:
            raise self._gone(sha) from None
        header = process.stdout.readline().split()
        if len(header) != 3:  # "<sha> missing"
            raise self._gone(sha)
        data = process.stdout.read(int(header[2]))
        process.stdout.read(1)  # the newline after the content
        return data

    def _start(self) -> subprocess.Popen[bytes]:
        self._process = subprocess.Popen(
            ["git", "--git-dir", self._repo.git_dir, "cat-file", "--batch"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=_env())
        return self._process

    def _gone(self, sha: str) -> SourceUnavailable:
        # git says "missing" both for an object that is gone (the repository changed under
        # the sync) and for one it cannot unpack, which it explains on stderr
        self._stderr.seek(0)
        said = self._stderr.read().decode(errors="replace").strip().splitlines()
        why = "; ".join(line.removeprefix("error: ") for line in said[-2:]) or \
            "the repository changed during the sync?"
        return unavailable(self._repo.source, f"object {sha} cannot be read from "
                           f"{self._repo.where} ({why})")


def _stop(process: subprocess.Popen[bytes]) -> None:
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()
    if process.poll() is None:
        process.kill()
    process.wait()


class Authors:
    """Path -> author of the newest commit that changed it, from one `git log` pass, read
    only as far as the paths asked for need. In a shallow clone, a file not changed within
    the fetched history has no author (the boundary commit did not really add it)."""

    def __init__(self, repo: Repo, head: str, shallow: bool) -> None:
        self._process = subprocess.Popen(
            ["git", "--git-dir", repo.git_dir, "-c", "log.showSignature=false",
             "-c", f"log.showRoot={str(not shallow).lower()}", "log", "--format=%x01%an",
             "--name-only", "--no-renames", "-z", head, "--"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=_env())
        assert self._process.stdout is not None
        self._records = _z_tokens(self._process.stdout)
        self._found: dict[str, str] = {}
        self._author = ""
        weakref.finalize(self, _stop, self._process)  # the walk may stop half-way

    def get(self, path: str) -> str | None:
        while path not in self._found:
            record = next(self._records, None)
            if record is None:
                return None
            if record.startswith(b"\x01"):
                self._author = record[1:].decode("utf-8", "replace")
            elif name := record.removeprefix(b"\n"):  # the first name follows a newline
                self._found.setdefault(name.decode("utf-8", "replace"), self._author)
        return self._found[path]
