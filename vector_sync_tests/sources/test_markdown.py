"""MarkdownSource against real files in a temporary vault."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from vector_sync.config import ConfigError
from vector_sync.core.documents import Document, ReadFailure
from vector_sync.core.source import SourceUnavailable
from vector_sync.sources.markdown import MarkdownConfig, MarkdownSource

RUNNING_AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
ROOT_SKIP_REASON = "running as root: root can read files and folders whatever their permissions"


def write(root: Path, rel: str, content: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def source(root: Path, **settings: Any) -> MarkdownSource:
    config = MarkdownConfig(kind="markdown", collections=["notes"], path=root, **settings)
    return MarkdownSource("notes", config)


def scan_ids(src: MarkdownSource) -> set[str]:
    return {entry.doc_id for entry in src.scan()}


def read_one(src: MarkdownSource, doc_id: str) -> Document | ReadFailure:
    results = list(src.read([doc_id]))
    assert len(results) == 1, results
    return results[0]


def document(root: Path, rel: str, content: str | bytes) -> Document:
    write(root, rel, content)
    result = read_one(source(root), rel)
    assert isinstance(result, Document), result
    return result


def failure(root: Path, rel: str, content: str | bytes, **settings: Any) -> ReadFailure:
    write(root, rel, content)
    result = read_one(source(root, **settings), rel)
    assert isinstance(result, ReadFailure), result
    return result


# --- scan ------------------------------------------------------------------------------------


def test_scan_lists_markdown_files_with_relative_ids_and_stat_hints(tmp_path: Path) -> None:
    write(tmp_path, "top.md", "# Top")
    write(tmp_path, "a/b/deep.md", "deep")
    write(tmp_path, "a/picture.png", b"\x89PNG")
    write(tmp_path, "a/notes.txt", "not markdown")

    entries = {entry.doc_id: entry.version for entry in source(tmp_path).scan()}

    assert set(entries) == {"top.md", "a/b/deep.md"}
    st = (tmp_path / "a/b/deep.md").stat()
    assert entries["a/b/deep.md"] == f"{st.st_mtime_ns}:{st.st_size}"


def test_include_and_exclude_are_gitignore_style_globs(tmp_path: Path) -> None:
    for rel in ["notes/a.md", "notes/b.markdown", "notes/archive/old.md", "notes/x.draft.md"]:
        write(tmp_path, rel, "text")
    write(tmp_path, "other/c.md", "text")

    src = source(
        tmp_path,
        include=["notes/**/*.md", "*.markdown"],
        exclude=["archive/", "*.draft.md"],
    )

    assert scan_ids(src) == {"notes/a.md", "notes/b.markdown"}


def test_invalid_glob_in_config_is_a_config_error_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"sources\.notes\.exclude"):
        source(tmp_path, exclude=["!"])


def test_ignore_files_apply_to_their_own_subtree_like_gitignore(tmp_path: Path) -> None:
    write(tmp_path, ".vectorsyncignore", "private/\n*.secret.md\n")
    write(tmp_path, "private/diary.md", "secret")
    write(tmp_path, "work/private/plan.md", "also matched: no slash prefix means any depth")
    write(tmp_path, "plan.secret.md", "secret")
    write(tmp_path, "work/.minimaignore", "/drafts.md\nscratch/\n!keep.secret.md\n")
    write(tmp_path, "work/drafts.md", "ignored: anchored to work/")
    write(tmp_path, "work/sub/drafts.md", "kept: the anchor is work/, not work/sub/")
    write(tmp_path, "work/scratch/x.md", "ignored")
    write(tmp_path, "work/keep.secret.md", "re-included by the deeper ignore file")
    write(tmp_path, "drafts.md", "kept: work/.minimaignore does not apply at the root")
    write(tmp_path, "scratch/y.md", "kept: same")

    assert scan_ids(source(tmp_path)) == {
        "work/sub/drafts.md",
        "work/keep.secret.md",
        "drafts.md",
        "scratch/y.md",
    }


def test_bad_ignore_file_stops_the_scan_rather_than_syncing_too_much(tmp_path: Path) -> None:
    write(tmp_path, "notes/.vectorsyncignore", "secret.md\n!\n")
    write(tmp_path, "notes/secret.md", "text")

    with pytest.raises(SourceUnavailable, match="notes/"):
        list(source(tmp_path).scan())


def test_ignore_file_symlinked_out_of_the_root_stops_the_scan(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    write(vault, "note.md", "text")
    (vault / ".vectorsyncignore").symlink_to(write(tmp_path, "shared-ignore", "*.md\n"))

    with pytest.raises(SourceUnavailable, match="outside"):
        list(source(vault).scan())


def test_only_the_configured_ignore_files_are_read(tmp_path: Path) -> None:
    write(tmp_path, ".vectorsyncignore", "a.md\n")
    write(tmp_path, ".minimaignore", "b.md\n")
    write(tmp_path, "a.md", "a")
    write(tmp_path, "b.md", "b")

    assert scan_ids(source(tmp_path, ignore_files=[".minimaignore"])) == {"a.md"}


def test_ignore_files_are_never_documents_themselves(tmp_path: Path) -> None:
    write(tmp_path, ".vectorsyncignore", "*.tmp\n")
    write(tmp_path, "sub/.minimaignore", "x\n")
    write(tmp_path, "sub/data.txt", "text")

    assert scan_ids(source(tmp_path, include=["**"])) == {"sub/data.txt"}


def test_dot_directories_are_skipped(tmp_path: Path) -> None:
    write(tmp_path, "note.md", "kept")
    for folder in (".git", ".obsidian", ".trash", "sub/.hidden"):
        write(tmp_path, f"{folder}/inside.md", "skipped")

    assert scan_ids(source(tmp_path)) == {"note.md"}


def test_dot_files_are_listed_like_any_other_note(tmp_path: Path) -> None:
    write(tmp_path, ".hidden.md", "a dot file, not a dot folder")
    write(tmp_path, "sub/.draft.md", "same")

    assert scan_ids(source(tmp_path)) == {".hidden.md", "sub/.draft.md"}


def test_scan_order_is_each_folders_files_by_name_then_its_subfolders(tmp_path: Path) -> None:
    for rel in ["b.md", "a/z.md", "a/b/c.md", "a-b.md", "A.md", "c/d.md", "a/b.md/e.md"]:
        write(tmp_path, rel, "text")

    assert [entry.doc_id for entry in source(tmp_path).scan()] == [
        "A.md", "a-b.md", "b.md", "a/z.md", "a/b/c.md", "a/b.md/e.md", "c/d.md",
    ]


def test_later_negated_globs_win_in_include_and_exclude(tmp_path: Path) -> None:
    for rel in ["a.md", "drafts/x.md", "drafts/ok.md", "archive/old.md", "archive/keep.md"]:
        write(tmp_path, rel, "text")

    src = source(
        tmp_path,
        include=["**/*.md", "!drafts/*.md", "drafts/ok.md"],
        exclude=["archive/", "!archive/keep.md"],
    )

    assert scan_ids(src) == {"a.md", "drafts/ok.md", "archive/keep.md"}


def test_a_folder_ignored_above_is_not_entered_even_to_re_include(tmp_path: Path) -> None:
    write(tmp_path, ".vectorsyncignore", "private\nbuild/\n")
    write(tmp_path, "private/.vectorsyncignore", "!keep.md\n")
    write(tmp_path, "private/keep.md", "stays out: git does not look inside ignored folders")
    write(tmp_path, "build/x.md", "ignored folder")
    write(tmp_path, "notes/build", "a file named like the folder pattern")
    write(tmp_path, "notes/private", "a file matched by the bare pattern")
    write(tmp_path, "notes/kept.md", "kept")

    assert scan_ids(source(tmp_path, include=["**"])) == {"notes/build", "notes/kept.md"}


def test_an_ignore_file_symlinked_inside_the_root_is_read(tmp_path: Path) -> None:
    write(tmp_path, "shared/rules", "*.tmp.md\n")
    write(tmp_path, "sub/a.tmp.md", "ignored")
    write(tmp_path, "sub/b.md", "kept")
    (tmp_path / "sub/.vectorsyncignore").symlink_to(tmp_path / "shared/rules")

    assert scan_ids(source(tmp_path)) == {"sub/b.md"}


def test_fifos_and_symlinks_to_folders_or_fifos_are_not_listed(tmp_path: Path) -> None:
    write(tmp_path, "real/note.md", "text")
    os.mkfifo(tmp_path / "pipe.md")
    (tmp_path / "to-pipe.md").symlink_to(tmp_path / "pipe.md")
    (tmp_path / "to-folder.md").symlink_to(tmp_path / "real")

    assert scan_ids(source(tmp_path)) == {"real/note.md"}


def test_symlink_into_a_dot_folder_is_followed_with_its_targets_hint(tmp_path: Path) -> None:
    target = write(tmp_path, ".templates/base.md", "text")
    (tmp_path / "base.md").symlink_to(target)

    entries = {entry.doc_id: entry.version for entry in source(tmp_path).scan()}

    st = target.stat()
    assert entries == {"base.md": f"{st.st_mtime_ns}:{st.st_size}"}


def test_notes_deleted_while_the_scan_runs_are_not_listed(tmp_path: Path) -> None:
    for rel in ["a.md", "b.md", "sub/c.md", "sub/d.md", "zz/e.md"]:
        write(tmp_path, rel, "text")
    scan = source(tmp_path).scan()

    first = next(scan)
    (tmp_path / "b.md").unlink()  # its folder was listed already: the stat finds it gone
    shutil.rmtree(tmp_path / "sub")  # not listed yet: an empty folder, not an error
    rest = [entry.doc_id for entry in scan]

    assert [first.doc_id, *rest] == ["a.md", "zz/e.md"]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files in /proc")
def test_scans_stopped_early_leave_no_folder_open(tmp_path: Path) -> None:
    for index in range(30):
        write(tmp_path, f"f{index}/note.md", "text")
    open_before = len(os.listdir("/proc/self/fd"))

    for _ in range(20):
        scan = source(tmp_path).scan()
        assert isinstance(scan, Generator)
        next(scan)
        next(scan)
        scan.close()

    assert len(os.listdir("/proc/self/fd")) == open_before


def test_hint_changes_on_edit_and_is_stable_across_scans(tmp_path: Path) -> None:
    path = write(tmp_path, "note.md", "first")
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    src = source(tmp_path)
    first = list(src.scan())

    assert list(src.scan()) == first

    path.write_text("second version", encoding="utf-8")
    os.utime(path, ns=(1_700_000_001_000_000_000, 1_700_000_001_000_000_000))
    assert list(src.scan())[0].version != first[0].version


def test_missing_root_raises_source_unavailable_naming_source_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-vault"

    with pytest.raises(SourceUnavailable) as raised:
        list(source(missing).scan())

    assert "notes" in str(raised.value)
    assert str(missing) in str(raised.value)


def test_root_that_is_a_file_raises_source_unavailable(tmp_path: Path) -> None:
    file = write(tmp_path, "vault.md", "not a folder")

    with pytest.raises(SourceUnavailable, match="not a folder"):
        list(source(file).scan())


def test_read_after_the_root_vanished_raises_rather_than_reporting_nothing(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    write(vault, "note.md", "text")
    src = source(vault)
    ids = scan_ids(src)
    shutil.rmtree(vault)

    with pytest.raises(SourceUnavailable):
        list(src.read(ids))


@pytest.mark.skipif(RUNNING_AS_ROOT, reason=ROOT_SKIP_REASON)
def test_unlistable_subfolder_raises_rather_than_hiding_its_notes(tmp_path: Path) -> None:
    write(tmp_path, "locked/note.md", "text")
    (tmp_path / "locked").chmod(0)
    try:
        with pytest.raises(SourceUnavailable, match="locked"):
            list(source(tmp_path).scan())
    finally:
        (tmp_path / "locked").chmod(0o755)


# --- symlinks --------------------------------------------------------------------------------


def test_file_symlink_inside_root_is_followed(tmp_path: Path) -> None:
    target = write(tmp_path, "real/target.md", "# Target\n\nbody")
    (tmp_path / "alias.md").symlink_to(target)

    entries = {entry.doc_id: entry.version for entry in source(tmp_path).scan()}
    result = read_one(source(tmp_path), "alias.md")

    st = target.stat()
    assert entries["alias.md"] == f"{st.st_mtime_ns}:{st.st_size}"
    assert isinstance(result, Document)
    assert result.fields["title"] == "Target"


def test_folder_symlinks_are_never_followed(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    write(vault, "real/note.md", "text")
    write(tmp_path, "elsewhere/outside.md", "text")
    (vault / "inside-link").symlink_to(vault / "real")
    (vault / "outside-link").symlink_to(tmp_path / "elsewhere")

    assert scan_ids(source(vault)) == {"real/note.md"}


@pytest.mark.parametrize(
    ("make_link", "error_code"),
    [
        (lambda vault, outside: (vault / "loop.md").symlink_to(vault / "loop.md"), "symlink_loop"),
        (lambda vault, outside: (vault / "loop.md").symlink_to(outside), "symlink_outside_root"),
        (
            lambda vault, outside: (vault / "loop.md").symlink_to(vault / "gone.md"),
            "broken_symlink",
        ),
    ],
    ids=["loop", "outside", "dangling"],
)
def test_unfollowable_symlinks_are_listed_and_fail_on_read(
    tmp_path: Path, make_link: Any, error_code: str
) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    outside = write(tmp_path, "secret.md", "must never be read")
    make_link(vault, outside)
    src = source(vault)

    entries = list(src.scan())
    result = read_one(src, "loop.md")

    assert [entry.doc_id for entry in entries] == ["loop.md"]
    assert entries[0].version.startswith("symlink")
    assert isinstance(result, ReadFailure)
    assert result.error_code == error_code
    assert "must never be read" not in result.message
    assert "loop.md ->" in result.message  # names the link so the user can find it


def test_read_never_resolves_ids_outside_the_root(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    write(vault, "note.md", "text")
    write(tmp_path, "secret.md", "outside")

    assert list(source(vault).read(["../secret.md", "/etc/passwd", "a//b.md"])) == []


# --- read failures -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "error_code", "in_message"),
    [
        (b"", "empty", "empty"),
        (b"  \n\t\n", "empty", "whitespace"),
        (b"\xef\xbb\xbf\n", "empty", "empty"),
        ("\u3000\u00a0\n".encode(), "empty", "whitespace"),
        (b"# Title\n\x00\x01\x02", "binary", "NUL"),
        (b"# Caf\xe9 ok\n", "invalid_utf8", "byte offset 5"),
        (b"---\ntitle: ok\nbad: [1, 2\nmore: 3\n---\nbody", "bad_frontmatter", "line 4"),
        (b"---\n- just\n- a list\n---\nbody", "bad_frontmatter", "mapping"),
        (b"---\njust a string\n---\nbody", "bad_frontmatter", "mapping"),
        (b"---\ncreated: 2026-02-30\n---\nbody", "bad_frontmatter", "day is out of range"),
    ],
    ids=[
        "empty",
        "whitespace",
        "bom-only",
        "unicode-whitespace",
        "binary",
        "invalid-utf8",
        "broken-yaml",
        "list-frontmatter",
        "scalar-frontmatter",
        "impossible-date",
    ],
)
def test_bad_content_is_a_read_failure_with_its_code(
    tmp_path: Path, content: bytes, error_code: str, in_message: str
) -> None:
    result = failure(tmp_path, "bad.md", content)

    assert (result.error_code, result.doc_id) == (error_code, "bad.md")
    assert in_message in result.message
    st = (tmp_path / "bad.md").stat()
    assert result.version == f"{st.st_mtime_ns}:{st.st_size}"


def test_file_over_max_file_bytes_is_too_large_naming_size_and_limit(tmp_path: Path) -> None:
    result = failure(tmp_path, "big.md", "x" * 101, max_file_bytes=100)

    assert result.error_code == "too_large"
    assert "101" in result.message and "100" in result.message


def test_file_at_max_file_bytes_is_read(tmp_path: Path) -> None:
    write(tmp_path, "fits.md", "x" * 100)
    result = read_one(source(tmp_path, max_file_bytes=100), "fits.md")

    assert isinstance(result, Document)
    assert result.fields["size"] == 100


@pytest.mark.skipif(RUNNING_AS_ROOT, reason=ROOT_SKIP_REASON)
def test_unreadable_file_is_a_read_failure(tmp_path: Path) -> None:
    path = write(tmp_path, "locked.md", "text")
    path.chmod(0)
    try:
        result = read_one(source(tmp_path), "locked.md")
    finally:
        path.chmod(0o644)

    assert isinstance(result, ReadFailure)
    assert result.error_code == "unreadable"


def test_os_error_while_opening_is_unreadable(tmp_path: Path, monkeypatch: Any) -> None:
    # the chmod test above cannot run as root; this one provokes the same path on any user
    write(tmp_path, "note.md", "text")
    src = source(tmp_path)

    def refuse(*args: Any, **kwargs: Any) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)
    result = read_one(src, "note.md")

    assert isinstance(result, ReadFailure)
    assert result.error_code == "unreadable"
    assert "Permission denied" in result.message


def test_file_deleted_after_scan_is_skipped_by_read(tmp_path: Path) -> None:
    write(tmp_path, "stays.md", "text")
    gone = write(tmp_path, "gone.md", "text")
    src = source(tmp_path)
    ids = sorted(scan_ids(src))
    gone.unlink()

    assert [result.doc_id for result in src.read(ids)] == ["stays.md"]


# --- document fields ---------------------------------------------------------------------------


def test_document_version_matches_the_scan_hint(tmp_path: Path) -> None:
    write(tmp_path, "note.md", "# Note")
    src = source(tmp_path)
    (entry,) = src.scan()

    assert read_one(src, "note.md").version == entry.version


def test_body_excludes_frontmatter_and_other_keys_are_kept_json_safe(tmp_path: Path) -> None:
    doc = document(
        tmp_path,
        "note.md",
        "---\ntitle: T\nrating: 4.5\ncreated: 2026-01-05\n"
        "meta: {seen: 2026-01-05 10:30:00, 7: seven}\nbody: overridden\n---\n\nThe body.\n",
    )

    assert doc.fields["body"] == "The body."
    assert doc.fields["rating"] == 4.5
    assert doc.fields["created"] == "2026-01-05"
    assert doc.fields["meta"] == {"seen": "2026-01-05T10:30:00", "7": "seven"}
    json.dumps(doc.fields)  # must not raise


def test_leading_bom_is_accepted_and_not_part_of_the_body(tmp_path: Path) -> None:
    doc = document(tmp_path, "bom.md", "\ufeff---\ntitle: With BOM\n---\nText")

    assert (doc.fields["title"], doc.fields["body"]) == ("With BOM", "Text")


def test_empty_frontmatter_block_is_fine(tmp_path: Path) -> None:
    doc = document(tmp_path, "note.md", "---\n---\nOnly a body.")

    assert (doc.fields["title"], doc.fields["body"]) == ("note", "Only a body.")


def test_lone_thematic_break_is_not_frontmatter(tmp_path: Path) -> None:
    doc = document(tmp_path, "rule.md", "---\n\nJust a rule above.\n")

    assert doc.fields["body"] == "---\n\nJust a rule above."


@pytest.mark.parametrize(
    ("content", "title"),
    [
        ("---\ntitle: From Frontmatter\n---\n# From Heading\n", "From Frontmatter"),
        ("---\ntags: [x]\n---\nIntro.\n\n## From *Heading* `code`\n", "From Heading code"),
        ("Setext heading\n==============\n\ntext", "Setext heading"),
        ("```\n# not a heading\n```\nplain text", "my note.v2"),
    ],
    ids=["frontmatter", "first-heading", "setext", "file-name"],
)
def test_title_fallbacks(tmp_path: Path, content: str, title: str) -> None:
    assert document(tmp_path, "folder/my note.v2.md", content).fields["title"] == title


def test_tags_from_frontmatter_and_inline_but_not_code_headings_or_urls(tmp_path: Path) -> None:
    doc = document(
        tmp_path,
        "note.md",
        "---\ntags: [alpha, '#beta']\ntag: gamma, delta epsilon\n---\n"
        "# Heading\n\n## Subheading\n\n"
        "Text #inline and #project/alpha, again #alpha, #2026, not#mid, \\#escaped.\n"
        "A `#codespan`, <https://example.com/page#fragment> and https://example.com/#frag.\n\n"
        "```\n#fenced\n```\n\n    #indented\n\n<!-- #comment -->\n",
    )

    assert doc.fields["tags"] == [
        "alpha",
        "beta",
        "gamma",
        "delta",
        "epsilon",
        "inline",
        "project/alpha",
    ]


def test_tags_as_a_space_separated_string(tmp_path: Path) -> None:
    doc = document(tmp_path, "note.md", "---\ntags: one two\n---\ntext")

    assert doc.fields["tags"] == ["one", "two"]


@pytest.mark.parametrize(
    ("frontmatter", "aliases"),
    [
        ("aliases: [Sourdough, Levain]", ["Sourdough", "Levain"]),
        ("alias: Starter, the wild kind", ["Starter, the wild kind"]),
        ("title: none here", []),
    ],
)
def test_aliases(tmp_path: Path, frontmatter: str, aliases: list[str]) -> None:
    doc = document(tmp_path, "note.md", f"---\n{frontmatter}\n---\ntext")

    assert doc.fields["aliases"] == aliases


def test_wikilinks_without_alias_or_heading_deduped_and_not_from_code(tmp_path: Path) -> None:
    doc = document(
        tmp_path,
        "note.md",
        "See [[Bread Basics]], [[Bread Basics#Flour|flour notes]], [[cooking/Starter|starter]],\n"
        "![[diagram.png]] and [[#Local heading]].\n\n`[[In Code]]`\n\n```\n[[In Fence]]\n```\n",
    )

    assert doc.fields["links"] == ["Bread Basics", "cooking/Starter", "diagram.png"]


def test_computed_fields_win_and_describe_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "sub/note.md", "---\npath: wrong\nsize: 0\n---\nHello")
    os.utime(path, (1_795_238_897, 1_795_238_897))

    fields = read_one(source(tmp_path), "sub/note.md")
    assert isinstance(fields, Document)
    assert fields.fields["path"] == "sub/note.md"
    assert fields.fields["modified_at"] == "2026-11-21T05:28:17Z"
    assert fields.fields["size"] == path.stat().st_size
    assert fields.fields["aliases"] == [] and fields.fields["links"] == []
