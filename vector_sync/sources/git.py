"""Git repository source: one document per included file of a branch's head commit.

Content comes from Git objects, never from a working tree, so an uncommitted edit is not
synced. scan() pins the branch head once and lists its tree (`git ls-tree`) with each blob
id as the version hint; changed_since() diffs the last synced commit against that head;
read() takes only the requested blobs, from one `git cat-file --batch` process. A URL repo
is cloned (bare) into `clone_dir` and fetched on every scan; a local repo's branch is read
where it is. Every git command runs with the repository's git dir, never its working tree.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import weakref
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from types import TracebackType
from typing import IO, Any
from urllib.parse import urlsplit

from vector_sync.config import GitSourceConfig, is_repo_url
from vector_sync.core.documents import Document, ReadFailure, SourceEntry
from vector_sync.sources.base import ChangeCheck, SourceUnavailable
from vector_sync.sources.markdown import (
    BadDocument,
    IgnoreLayer,
    PathRules,
    decode_text,
    note_fields,
    trimmed_body,
)

log = logging.getLogger(__name__)

MARKDOWN_SUFFIXES = (".md", ".markdown")
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
        raise _unavailable(source, "the git command is not installed") from None
    except subprocess.TimeoutExpired:
        raise _unavailable(source, f"{action} took longer than {timeout} s") from None


def _unavailable(source: str, problem: str) -> SourceUnavailable:
    return SourceUnavailable(f"git source {source!r}: {problem}")


def _stderr(done: subprocess.CompletedProcess[bytes], secret: str | None = None) -> str:
    text = " ".join(done.stderr.decode("utf-8", "replace").split())
    return text.replace(secret, "***") if secret else text


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def masked(url: str) -> str:
    """`url` with its password (if any) replaced by ***, for messages."""
    password = _password(url)
    return url.replace(f":{password}@", ":***@", 1) if password else url


def _short(sha: str) -> str:
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
class _Entry:
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
class _Repo:
    """A repository's object store, addressed by its git dir."""

    git_dir: str
    where: str  # the repo as configured (credentials masked), for messages
    source: str

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        done = _git(self.source, ["--git-dir", self.git_dir, *args])
        if check and done.returncode:
            raise _unavailable(self.source, f"git {args[0]} failed in {self.where}: "
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
        raise _missing_branch(self.source, branch, self.where, branches)

    def tree(self, commit: str) -> Iterator[tuple[str, _Entry]]:
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
            yield path, _Entry(mode, sha, 0 if size == "-" else int(size))

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


def _missing_branch(source: str, branch: str, where: str,
                    branches: Sequence[str] | None = None) -> SourceUnavailable:
    """`branches`: the repository's branches when known (a local repository)."""
    found = "" if branches is None else \
        f" (its branches: {', '.join(branches)})" if branches else " (it has no branches)"
    return _unavailable(source, f"branch {branch!r} does not exist in {where}{found}; "
                        f"check sources.{source}.branch. Nothing was synced or deleted")


def _local_repo(source: str, path: str) -> _Repo:
    if not os.path.isdir(path):
        raise _unavailable(source, f"the repository folder {path} does not exist")
    # no looking upwards: a folder inside some other repository is not a repository
    ceiling = {"GIT_CEILING_DIRECTORIES": os.path.dirname(os.path.abspath(path))}
    done = _git(source, ["-C", path, "rev-parse", "--absolute-git-dir"], env=_env(ceiling))
    if done.returncode:
        raise _unavailable(source, f"{path} is not a Git repository (neither the top folder of "
                           f"a working tree nor a bare repository); check sources.{source}.repo: "
                           f"{_stderr(done)}")
    return _Repo(done.stdout.decode().strip(), path, source)


def _fetched_clone(source: str, config: GitSourceConfig) -> _Repo:
    """The bare clone of a URL repo in `clone_dir`, with the branch just fetched."""
    if config.clone_dir is None:
        raise ValueError(f"sources.{source}.clone_dir is not set (load the config with "
                         "load_config, which defaults it)")
    clone, where, secret = str(config.clone_dir), masked(config.repo), _password(config.repo)
    if not os.path.exists(os.path.join(clone, "HEAD")):
        done = _git(source, ["init", "--bare", "--quiet", clone])  # creates missing folders
        if done.returncode:
            raise _unavailable(source, f"cannot create the clone in {clone}: {_stderr(done)}")
    ref = f"refs/heads/{config.branch}"
    # `+`: a force-pushed branch is taken as it now is; detection sees the rewrite
    done = _git(source, ["--git-dir", clone, "fetch", "--quiet", "--no-tags",
                         "--no-write-fetch-head", "--end-of-options", config.repo,
                         f"+{ref}:{ref}"], timeout=config.fetch_timeout_s,
                action=f"fetching {where} (fetch_timeout_s)")
    if "couldn't find remote ref" in done.stderr.decode("utf-8", "replace"):
        raise _missing_branch(source, config.branch, where)
    if done.returncode:
        raise _unavailable(source, f"cannot fetch {where}: {_stderr(done, secret)}. Nothing "
                           "was synced or deleted")
    return _Repo(clone, where, source)


def head_commit(source: str, config: GitSourceConfig) -> str:
    """The branch head's commit id, cheap enough for a sensor tick: the branch ref of a local
    repo, `git ls-remote` for a URL repo (nothing is fetched, the clone is not touched). No
    blob is read and Qdrant is not opened. Raises SourceUnavailable."""
    if not is_repo_url(config.repo):
        return _local_repo(source, config.repo).head(config.branch)[0]
    ref = f"refs/heads/{config.branch}"
    done = _git(source, ["ls-remote", "--end-of-options", config.repo, ref],
                timeout=config.fetch_timeout_s, action=f"reaching {masked(config.repo)}")
    if done.returncode:
        raise _unavailable(source, f"cannot reach {masked(config.repo)}: "
                           f"{_stderr(done, _password(config.repo))}")
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        sha, _, name = line.partition("\t")
        if name == ref:
            return sha
    raise _missing_branch(source, config.branch, masked(config.repo))


def head_look(source: str, config: GitSourceConfig, state: dict[str, Any] | None) -> ChangeCheck:
    """A sensor's look: has the branch head moved since the head kept in `state`?"""
    head = head_commit(source, config)
    changed = (state or {}).get("head") != head
    return ChangeCheck(changed, f"branch {config.branch} of {masked(config.repo)} " + (
        f"has a new head {_short(head)}" if changed else f"is still at {_short(head)}"),
        {"head": head})


# --- reading objects -----------------------------------------------------------------------


class _Blobs:
    """One `git cat-file --batch` process. Objects are asked for one at a time, so neither
    pipe can fill up while the other end waits."""

    def __init__(self, repo: _Repo) -> None:
        self._repo = repo
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> _Blobs:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._process is not None:
            _stop(self._process)

    def get(self, sha: str) -> bytes:
        process = self._process or self._start()
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(sha.encode("ascii") + b"\n")
            process.stdin.flush()
        except BrokenPipeError:
            raise self._gone(sha) from None
        header = process.stdout.readline().split()
        if len(header) != 3:
            raise self._gone(sha)
        data = process.stdout.read(int(header[2]))
        process.stdout.read(1)  # the newline after the content
        return data

    def _start(self) -> subprocess.Popen[bytes]:
        self._process = subprocess.Popen(
            ["git", "--git-dir", self._repo.git_dir, "cat-file", "--batch"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=_env())
        return self._process

    def _gone(self, sha: str) -> SourceUnavailable:
        return _unavailable(self._repo.source, f"object {sha} cannot be read from "
                            f"{self._repo.where} (the repository changed during the sync?)")


def _stop(process: subprocess.Popen[bytes]) -> None:
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()
    if process.poll() is None:
        process.kill()
    process.wait()


class _Authors:
    """Path -> author of the newest commit that changed it, from one `git log` pass, read
    only as far as the paths asked for need. In a shallow clone, a file not changed within
    the fetched history has no author (the boundary commit did not really add it)."""

    def __init__(self, repo: _Repo, head: str, shallow: bool) -> None:
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


# --- which files are documents ---------------------------------------------------------------


class _Selection:
    """The source's path rules applied to a tree, with the ignore files found in that tree.
    Each folder's verdict is worked out once (a tree has many files per folder)."""

    def __init__(self, source: str, rules: PathRules,
                 ignore_files: dict[str, dict[str, list[str]]]) -> None:
        self._source = source
        self._rules = rules
        self._ignore_files = ignore_files  # folder -> ignore file name -> lines
        self._folders: dict[str, tuple[IgnoreLayer, ...] | None] = {}

    def wants(self, path: str) -> bool:
        layers = self._layers(path[: path.rfind("/") + 1])
        return layers is not None and self._rules.wants(layers, path)

    def _layers(self, folder: str) -> tuple[IgnoreLayer, ...] | None:
        """The ignore layers that apply in `folder`; None when it is not descended into."""
        if folder in self._folders:
            return self._folders[folder]
        layers: tuple[IgnoreLayer, ...] | None = ()
        if folder:
            above = self._layers(folder[: folder.rstrip("/").rfind("/") + 1])
            layers = above if above is not None and self._rules.descends(above, folder) else None
        if layers is not None:
            try:
                layer = self._rules.layer(folder, self._ignore_files.get(folder, {}))
            except ValueError as error:
                raise _unavailable(self._source, str(error)) from None
            layers = layers if layer is None else (*layers, layer)
        self._folders[folder] = layers
        return layers


# --- the source ------------------------------------------------------------------------------


@dataclass
class _Pin:
    """What one scan saw: the branch head and its document files."""

    repo: _Repo
    head: str
    committed_at: str
    entries: dict[str, _Entry]
    selection: _Selection
    authors: _Authors | None = None


class GitSource:
    """The files of `config.branch` at its head; doc_id is the path in the tree, with `/`."""

    scoped_reads = True  # read() only knows the selected files of the pinned tree

    def __init__(self, name: str, config: GitSourceConfig) -> None:
        self.name = name
        self.config = config
        self._rules = PathRules(name, config.include, config.exclude, config.ignore_files)
        self._pinned: _Pin | None = None
        self.checkpoint: str | None = None
        self.detection: dict[str, Any] = {}

    # --- scan and change detection ---

    def scan(self) -> Iterator[SourceEntry]:
        self._pinned = self._pin()
        for path, entry in self._pinned.entries.items():
            yield SourceEntry(path, entry.version)

    def changed_since(self, checkpoint: str | None) -> set[str]:
        pin = self._current()
        self.checkpoint = pin.head
        base, reason = self._diff_base(pin, checkpoint)
        if base is None:
            self.detection = {"detection": "full tree", "detection_reason": reason,
                              "commit": pin.head}
            log.info("git source %s at %s: full tree comparison: %s", self.name,
                     _short(pin.head), reason)
            return set()
        counts: Counter[str] = Counter()
        changed = set()
        for status, path in pin.repo.diff(base, pin.head) if base != pin.head else ():
            if pin.selection.wants(path):
                counts[status] += 1
                if path in pin.entries:
                    changed.add(path)
        total = counts.total()
        summary = (f"commit-diff {_short(base)}..{_short(pin.head)}: {total} "
                   f"path{'' if total == 1 else 's'} ({counts['A']} added, {counts['M']} "
                   f"modified, {counts['D']} deleted)")
        self.detection = {"detection": "commit-diff", "detection_reason": summary,
                          "commit": pin.head, "commit_range": f"{base}..{pin.head}",
                          "diff_added": counts["A"], "diff_modified": counts["M"],
                          "diff_deleted": counts["D"]}
        log.info("git source %s: %s", self.name, summary)
        return changed

    def _diff_base(self, pin: _Pin, checkpoint: str | None) -> tuple[str | None, str]:
        """The commit to diff from, or None and why the whole tree must be compared."""
        if checkpoint is None:
            return None, ("no last synced commit (first sync, a new collection, or the "
                          "collections were last synced at different commits)")
        if checkpoint == pin.head:
            return checkpoint, ""
        shallow = pin.repo.is_shallow()
        if not pin.repo.has_commit(checkpoint):
            where = "this shallow clone" if shallow else \
                "the repository any more (force-pushed or reset, then garbage-collected)"
            return None, f"the last synced commit {_short(checkpoint)} is not in {where}"
        if pin.repo.is_ancestor(checkpoint, pin.head):
            return checkpoint, ""
        if shallow:
            return None, (f"cannot tell whether {_short(checkpoint)} is an ancestor of "
                          f"{_short(pin.head)}: the repository is a shallow clone")
        return None, (f"history rewritten ({_short(checkpoint)} is not an ancestor of "
                      f"{_short(pin.head)})")

    def _pin(self) -> _Pin:
        repo = _fetched_clone(self.name, self.config) if is_repo_url(self.config.repo) \
            else _local_repo(self.name, self.config.repo)
        head, committed = repo.head(self.config.branch)
        tree = dict(repo.tree(head))
        selection = _Selection(self.name, self._rules, self._ignore_files(repo, tree))
        entries = {path: entry for path, entry in tree.items() if selection.wants(path)}
        committed_at = datetime.fromtimestamp(committed, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return _Pin(repo, head, committed_at, entries, selection)

    def _current(self) -> _Pin:
        if self._pinned is None:  # read() without scan(): a targeted sync
            self._pinned = self._pin()
        return self._pinned

    def _ignore_files(self, repo: _Repo,
                      tree: dict[str, _Entry]) -> dict[str, dict[str, list[str]]]:
        """Folder -> ignore file name -> lines, from the tree's blobs."""
        found: dict[str, dict[str, list[str]]] = {}
        with _Blobs(repo) as blobs:
            for path, entry in tree.items():
                folder, _, name = path.rpartition("/")
                if name not in self._rules.ignore_names:
                    continue
                if entry.kind != "blob":
                    # unreadable rules are fatal: guessing could sync files meant to stay out
                    raise _unavailable(self.name, f"ignore file {path} is a {entry.kind} in "
                                       "the Git tree, which is never followed")
                text = blobs.get(entry.sha).decode("utf-8-sig", errors="replace")
                found.setdefault(folder + "/" if folder else "", {})[name] = text.splitlines()
        return found

    # --- read ---

    def read(self, doc_ids: Iterable[str]) -> Iterator[Document | ReadFailure]:
        pin = self._current()
        with _Blobs(pin.repo) as blobs:
            for doc_id in doc_ids:
                entry = pin.entries.get(doc_id)
                if entry is not None:
                    yield self._document(pin, doc_id, entry, blobs)

    def _document(self, pin: _Pin, doc_id: str, entry: _Entry,
                  blobs: _Blobs) -> Document | ReadFailure:
        try:
            fields = self._content(doc_id, entry, blobs)
        except BadDocument as bad:
            return ReadFailure(doc_id, entry.version, bad.error_code, bad.message)
        fields.update(path=doc_id, commit=pin.head, committed_at=pin.committed_at,
                      size=entry.size)
        if self.config.last_author:
            fields["last_author"] = self._authors(pin).get(doc_id)
        return Document(doc_id, entry.version, fields)

    def _content(self, doc_id: str, entry: _Entry, blobs: _Blobs) -> dict[str, Any]:
        if entry.kind == "symlink":
            target = blobs.get(entry.sha).decode("utf-8", "replace")
            raise BadDocument("symlink", f"a symlink in the Git tree ({doc_id} -> {target}); "
                              "symlinks are not followed")
        if entry.kind == "submodule":
            raise BadDocument("submodule", f"a submodule (commit {_short(entry.sha)} of "
                              "another repository); its files are not synced")
        limit = self.config.max_file_bytes
        if entry.size > limit:
            raise BadDocument("too_large", f"the file is {entry.size} bytes, over the limit of "
                              f"{limit} bytes (max_file_bytes)")
        text = decode_text(blobs.get(entry.sha))
        if doc_id.lower().endswith(MARKDOWN_SUFFIXES):
            return note_fields(doc_id, text)
        return {"title": PurePosixPath(doc_id).name, "body": trimmed_body(text)}

    def _authors(self, pin: _Pin) -> _Authors:
        if pin.authors is None:
            pin.authors = _Authors(pin.repo, pin.head, pin.repo.is_shallow())
        return pin.authors
