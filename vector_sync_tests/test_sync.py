"""End to end through the CLI: real vault files, real model, real embedded Qdrant, real
Dagster runs. Every count the CLI reports is checked against what Qdrant holds."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from vector_sync.config import load_config
from vector_sync.core.pipeline import embed
from vector_sync.core.store import open_store
from vector_sync_tests.support import Project, counts, long_note

ZERO = {"added": 0, "updated": 0, "payload_updated": 0, "deleted": 0, "failed": 0,
        "chunks_embedded": 0}


def _seed(project: Project) -> None:
    project.note("a.md", "---\ntitle: Alpha\ntags: [one]\n---\nAlpha is about apples.\n")
    project.note("sub/b.md", "# Bravo\n\nBravo talks about bread and #baking.\n")
    project.note("sub/deep/c.md", "Charlie covers cheese.\n")
    project.note("long.md", long_note("Longform"))


def _storage_digest(project: Project) -> str:
    digest = hashlib.sha256()
    for file in sorted((project.root / "state" / "qdrant").rglob("*")):
        if file.is_file() and file.suffix != ".lock":
            digest.update(file.read_bytes())
    return digest.hexdigest()


def _subset(report_counts: dict[str, int], expected: dict[str, int]) -> dict[str, int]:
    return {k: report_counts[k] for k in expected}


def test_first_sync_adds_everything_and_a_second_sync_writes_nothing(project, capsys):
    _seed(project)
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0
    first = counts(report)
    points = project.points()
    assert first["added"] == 4 == len(points)
    assert first["chunks_embedded"] == sum(len(p) for p in points.values())
    assert len(points["long.md"]) > 2  # several chunks
    payload = points["a.md"][0]
    assert payload["source"] == "notes" and payload["tags"] == ["one"]
    assert payload["path"] == "a.md" and payload["chunk_count"] == 1
    assert "Alpha is about apples." in payload["text"]
    assert {"content_hash", "synced_at", "chunk_index"} <= payload.keys()

    before = _storage_digest(project)
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0
    assert _subset(counts(report), ZERO) == ZERO
    assert counts(report)["unchanged"] == 4
    assert _storage_digest(project) == before  # not a single write to Qdrant


def test_edit_payload_delete_rename_shrink_each_do_only_their_work(project, capsys):
    _seed(project)
    project.cli("sync", capsys=capsys)
    before = project.points()

    project.note("sub/deep/c.md", "Charlie now covers chocolate instead.\n")
    code, report = project.cli("sync", capsys=capsys)
    assert _subset(counts(report), {"updated": 1, "added": 0, "chunks_embedded": 1}) == \
        {"updated": 1, "added": 0, "chunks_embedded": 1}
    after = project.points()
    assert "chocolate" in after["sub/deep/c.md"][0]["text"]
    assert after["a.md"][0]["synced_at"] == before["a.md"][0]["synced_at"]  # untouched

    project.note("a.md", "---\ntitle: Alpha\ntags: [one, two]\n---\nAlpha is about apples.\n")
    code, report = project.cli("sync", capsys=capsys)
    assert _subset(counts(report), {"payload_updated": 1, "updated": 0, "chunks_embedded": 0}) \
        == {"payload_updated": 1, "updated": 0, "chunks_embedded": 0}
    assert project.points()["a.md"][0]["tags"] == ["one", "two"]

    (project.vault / "sub" / "b.md").unlink()
    code, report = project.cli("sync", capsys=capsys)
    assert counts(report)["deleted"] == 1
    assert "sub/b.md" not in project.points()

    (project.vault / "a.md").rename(project.vault / "renamed.md")
    code, report = project.cli("sync", capsys=capsys)
    assert _subset(counts(report), {"added": 1, "deleted": 1}) == {"added": 1, "deleted": 1}
    points = project.points()
    assert "a.md" not in points and points["renamed.md"][0]["path"] == "renamed.md"

    long_chunks = len(points["long.md"])
    project.note("long.md", "---\ntitle: Longform\n---\nNow it is short.\n")
    code, report = project.cli("sync", capsys=capsys)
    assert _subset(counts(report), {"updated": 1, "chunks_embedded": 1}) == \
        {"updated": 1, "chunks_embedded": 1}
    shrunk = project.points()["long.md"]
    assert long_chunks > 1 and len(shrunk) == 1 and shrunk[0]["chunk_count"] == 1
    assert code == 0


def test_an_ignore_pattern_removes_those_documents(project, capsys):
    _seed(project)
    project.cli("sync", capsys=capsys)
    (project.vault / ".vectorsyncignore").write_text("sub/\n")
    code, report = project.cli("sync", capsys=capsys)
    assert counts(report)["deleted"] == 2
    assert set(project.points()) == {"a.md", "long.md"}


def test_plan_predicts_the_next_sync_exactly_and_writes_nothing(project, capsys):
    _seed(project)
    code, planned = project.cli("plan", capsys=capsys)
    assert code == 0 and not (project.root / "state").exists()
    code, synced = project.cli("sync", capsys=capsys)
    assert planned == synced

    project.note("sub/deep/c.md", "Charlie changed.\n")
    project.note("a.md", "---\ntitle: Alpha\ntags: [x]\n---\nAlpha is about apples.\n")
    (project.vault / "sub" / "b.md").unlink()
    project.note("new.md", long_note("Fresh", sections=2))
    ledger = (project.root / "state" / "ledger.sqlite").read_bytes()
    code, planned = project.cli("plan", capsys=capsys)
    assert (project.root / "state" / "ledger.sqlite").read_bytes() == ledger
    code, synced = project.cli("sync", capsys=capsys)
    assert planned == synced
    assert _subset(counts(synced), {"added": 1, "updated": 1, "payload_updated": 1,
                                    "deleted": 1}) == {"added": 1, "updated": 1,
                                                       "payload_updated": 1, "deleted": 1}


def test_changing_chunking_or_model_rebuilds_that_collection_only_by_a_migration(
        project, capsys, tmp_path):
    _seed(project)
    project.config["collections"]["titles"] = {"embed": ["title"], "payload": ["tags"]}
    project.config["sources"]["notes"]["collections"] = ["notes", "titles"]
    project.save()
    project.cli("sync", capsys=capsys)

    project.config["collections"]["notes"]["chunking"] = {"max_tokens": 128, "overlap_tokens": 16}
    project.save()
    code, report = project.cli("sync", capsys=capsys)  # never rebuilt in place
    assert counts(report, collection="notes")["chunks_embedded"] == 0
    assert list(report["migration_pending"]) == ["notes"]
    code, migrated = project.cli("migrate", "start", capsys=capsys)
    assert code == 0 and list(migrated["collections"]) == ["notes"]
    assert project.cli("migrate", "switch", capsys=capsys)[0] == 0
    assert all(p[0]["chunk_count"] == len(p) for p in project.points("notes").values())

    from vector_sync.core.text.model_files import default_model_dir

    project.config["collections"]["titles"]["embedding"] = {
        "model": "local/minilm-copy", "model_path": str(default_model_dir())}
    project.save()
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0, report
    assert counts(report, collection="titles")["chunks_embedded"] == 0
    assert counts(report, collection="notes")["chunks_embedded"] == 0
    code, migrated = project.cli("migrate", "start", capsys=capsys)
    assert code == 0 and list(migrated["collections"]) == ["titles"]
    assert migrated["collections"]["titles"]["chunks_embedded"] == 4


def test_bad_files_fail_alone_with_reasons_and_lose_nothing(project, capsys):
    _seed(project)
    project.cli("sync", capsys=capsys)
    good_points = project.points()["a.md"]

    (project.vault / "a.md").write_bytes(b"---\ntitle: Alpha\n---\nbroken \xff\xfe bytes\n")
    (project.vault / "binary.md").write_bytes(b"\x00\x01\x02PNG")
    (project.vault / "empty.md").write_text("")
    (project.vault / "yaml.md").write_text("---\ntitle: [unclosed\n---\nbody\n")
    (project.vault / "loop.md").symlink_to(project.vault / "loop.md")
    project.note("fine.md", "A perfectly fine new note.\n")
    code, report = project.cli("sync", capsys=capsys)
    assert code == 1
    assert _subset(counts(report), {"failed": 5, "added": 1}) == {"failed": 5, "added": 1}
    points = project.points()
    assert points["a.md"] == good_points  # previously synced, now broken: kept as it was
    assert "fine.md" in points and "binary.md" not in points

    code, status = project.cli("status", capsys=capsys)
    reasons = {row["doc_id"]: row["error_code"] for row in status["failed"]}
    assert reasons == {"a.md": "invalid_utf8", "binary.md": "binary", "empty.md": "empty",
                       "yaml.md": "bad_frontmatter", "loop.md": "symlink_loop"}
    assert all(row["error"] for row in status["failed"])

    for name in ("binary.md", "empty.md", "yaml.md", "loop.md"):
        (project.vault / name).unlink()
    project.note("a.md", "---\ntitle: Alpha\ntags: [one]\n---\nAlpha is about apples.\n")
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0 and counts(report)["failed"] == 0
    code, status = project.cli("status", capsys=capsys)
    assert status["failed"] == []


def test_a_missing_vault_is_an_error_that_deletes_nothing(project, capsys):
    _seed(project)
    project.cli("sync", capsys=capsys)
    project.vault.rename(project.root / "unmounted")
    code, report = project.cli("sync", capsys=capsys)
    assert code == 1
    assert "does not exist" in report["sources"]["notes"]["error"]
    assert len(project.points()) == 4


def test_qdrant_down_fails_rows_and_the_retry_reuses_stored_embeddings(project, capsys):
    _seed(project)
    project.config["qdrant"] = {"url": "http://127.0.0.1:9", "timeout_s": 2}
    project.config["retry"] = {"step_retries": 1, "step_delay_s": 0.1}
    project.save()
    code, report = project.cli("sync", capsys=capsys)
    assert code == 1 and counts(report)["failed"] == 4
    embedded = counts(report)["chunks_embedded"]
    assert embedded > 0
    code, status = project.cli("status", capsys=capsys)
    assert {r["error_code"] for r in status["failed"]} == {"qdrant_error"}

    project.config["qdrant"] = {"url": None}  # Qdrant is back
    project.save()
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0
    assert counts(report)["added"] == 4 and counts(report)["chunks_embedded"] == 0
    assert sum(len(p) for p in project.points().values()) == embedded


def test_config_errors_exit_2_and_name_the_key(project, capsys):
    project.config["collections"]["notes"]["embedd"] = ["title"]
    project.save()
    code = __import__("vector_sync.cli", fromlist=["main"]).main(
        ["sync", "--config", str(project.config_file)])
    err = capsys.readouterr().err
    assert code == 2 and "collections.notes.embedd" in err and "unknown key" in err


def test_search_finds_the_right_note(project, capsys):
    _seed(project)
    project.cli("sync", capsys=capsys)
    code, hits = project.cli("search", "notes", "baking bread", "--limit", "2", capsys=capsys)
    assert code == 0 and hits[0]["doc_id"] == "sub/b.md"
    assert {"score", "source", "doc_id", "chunk_index", "text"} <= hits[0].keys()


@pytest.fixture(autouse=True)
def _no_leftover_partials(project: Project):
    yield
    assert not list(Path(project.root).rglob("*.partial"))


def test_the_text_output_shows_the_counts_and_the_failed_documents(project, capsys):
    from vector_sync.cli import main

    _seed(project)
    (project.vault / "empty.md").write_text("")
    capsys.readouterr()
    code = main(["sync", "--config", str(project.config_file)])
    out = capsys.readouterr().out
    assert code == 1
    row = next(line for line in out.splitlines() if line.startswith("notes"))
    assert row.split()[2:] == ["4", "0", "0", "0", "0", "1", str(
        sum(len(p) for p in project.points().values())), "0"]
    code = main(["status", "--config", str(project.config_file)])
    out = capsys.readouterr().out
    assert code == 0 and "notes/empty.md [notes] empty:" in out
    code = main(["search", "notes", "apples", "--config", str(project.config_file)])
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[1] == "notes/a.md#0"


def _vectors(project: Project, doc_id: str) -> dict[str, list[float]]:
    """chunk text -> vector of the points Qdrant holds for `doc_id`."""
    with project.qdrant() as store:
        return {p.payload["text"]: p.vector or [] for p in store.scroll(
            "notes", None, with_vectors=True) if p.payload["doc_id"] == doc_id}


def test_an_edit_embeds_only_the_chunks_whose_text_changed(project, capsys):
    project.note("long.md", long_note("Longform", sections=5))
    code, first = project.cli("sync", capsys=capsys)
    chunks = counts(first)["chunks_embedded"]
    assert code == 0 and chunks >= 5
    before = _vectors(project, "long.md")

    text = (project.vault / "long.md").read_text()
    project.note("long.md", text + "\nOne more sentence, appended at the very end.\n")
    code, planned = project.cli("plan", capsys=capsys)
    code, synced = project.cli("sync", capsys=capsys)
    assert code == 0 and planned == synced
    assert _subset(counts(synced), {"updated": 1, "chunks_embedded": 1}) == {
        "updated": 1, "chunks_embedded": 1}
    after = _vectors(project, "long.md")
    assert len(after) == chunks and sum(t not in before for t in after) == 1
    for chunk_text, vector in after.items():  # unchanged chunks kept their exact vectors
        if chunk_text in before:
            assert vector == pytest.approx(before[chunk_text], abs=1e-6)
    code, verified = project.cli("verify", capsys=capsys)
    assert code == 0


def test_a_read_back_that_cannot_open_qdrant_reuses_nothing(project, capsys):
    project.note("long.md", long_note("Longform", sections=3))
    project.cli("sync", capsys=capsys)
    text = (project.vault / "long.md").read_text()
    project.note("long.md", text + "\nAppended.\n")
    config = load_config(project.config_file)
    # another process would hold embedded storage; here this test holds it, so the reuse
    # lookup cannot open it and returns nothing: the embed stage then embeds every chunk
    with open_store(config.qdrant, config.state):
        held = embed.held_chunks(config, "notes", "notes", {"long.md"})
    assert held == {}
    assert embed.held_chunks(config, "notes", "notes", {"long.md"})  # free again: found


def test_an_unavailable_source_is_one_clear_line_not_a_stack_trace(project, capsys):
    project.config["sources"]["notes"]["path"] = "no-such-vault"
    project.save()
    capsys.readouterr()
    code = __import__("vector_sync.cli", fromlist=["main"]).main(
        ["sync", "--config", str(project.config_file)])
    printed = capsys.readouterr()
    assert code == 1
    reason = "does not exist"
    assert (printed.out + printed.err).count(reason) == 1, printed.err
    assert "Stack Trace" not in printed.err and "Traceback" not in printed.err


def test_a_payload_field_that_becomes_null_is_a_payload_update_verify_agrees_with(
        project: Project, capsys):
    project.config["collections"]["notes"]["payload"] = ["owner", "path"]
    project.save()
    project.note("a.md", "---\nowner: ana\n---\n# A\n\nApples keep for weeks.\n")
    assert project.cli("sync", capsys=capsys)[0] == 0
    project.note("a.md", "---\nowner:\n---\n# A\n\nApples keep for weeks.\n")
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0 and counts(report)["payload_updated"] == 1
    assert "owner" not in project.points()["a.md"][0]
    code, report = project.cli("verify", capsys=capsys)
    assert code == 0, report
