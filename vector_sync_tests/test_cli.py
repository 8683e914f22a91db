"""What the command line says when things go wrong, as a user reads it: a sync that failed
says so per source before any count, `verify` keeps "could not verify" apart from "NOT
consistent", `status` flags a source it cannot reach, `repair` against a Qdrant that is not
there is one line, one vocabulary for what verify counts, and `inspect` shows one document.

The faults are real: a vault folder renamed away, a Qdrant URL on a closed port, a point
deleted from embedded Qdrant through the store."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from vector_sync.cli import main
from vector_sync.config import load_config
from vector_sync.core.consistency.verify import verify_source
from vector_sync.core.hashing import point_id
from vector_sync.defs.checks import _evaluations
from vector_sync_tests.support import Project, long_note


def _seed(project: Project) -> None:
    for i in range(4):
        project.note(f"n{i}.md", f"---\ntags: [t{i}]\n---\n# Note {i}\n\nNote {i} is short.\n")
    project.note("long.md", long_note("Longform"))


def _text(project: Project, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str,
                                                                                      str]:
    capsys.readouterr()
    code = main([*args, "--config", str(project.config_file)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _closed_port() -> int:
    with socket.socket() as probe:  # bound, then closed: nothing listens there
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _qdrant_on_a_closed_port(project: Project) -> None:
    project.config["qdrant"] = {"url": f"http://127.0.0.1:{_closed_port()}", "timeout_s": 1}
    project.config["retry"] = {"step_retries": 0}
    project.save()


# --- sync: what failed, first ---------------------------------------------------------------


def test_a_sync_of_a_removed_vault_says_so_first_and_prints_no_row_of_zeros(
        project: Project, capsys):
    _seed(project)
    assert project.cli("sync", capsys=capsys)[0] == 0
    project.vault.rename(project.root / "renamed")
    code, out, _ = _text(project, capsys, "sync")
    lines = out.splitlines()
    assert code == 1 and lines[0] == "sync: FAILED for notes"
    assert lines[1].startswith("notes         error: markdown source 'notes': the folder")
    assert "does not exist" in lines[1]
    assert "applied to Qdrant" not in out and not any(
        line.startswith("notes         notes") for line in lines)  # no counts: nothing ran
    code, report = project.cli("sync", capsys=capsys)
    assert code == 1 and report["sources"]["notes"]["collections"] == {}
    assert "does not exist" in report["sources"]["notes"]["error"]


def test_a_sync_with_qdrant_on_a_closed_port_says_qdrant_failed_first(
        project: Project, capsys):
    _seed(project)
    _qdrant_on_a_closed_port(project)
    code, out, _ = _text(project, capsys, "sync")
    lines = out.splitlines()
    assert code == 1 and lines[0] == "sync: FAILED for notes"
    assert lines[1].startswith("notes         error: Qdrant: 5 document(s) not written")
    assert "Connection refused" in lines[1] and "applied to Qdrant" not in out
    code, report = project.cli("sync", capsys=capsys)  # the documents retried, failed again
    error = report["sources"]["notes"]["error"]
    assert code == 1 and error.startswith("Qdrant: 5 document(s) not written (5 in notes")
    assert report["sources"]["notes"]["collections"]["notes"]["failed"] == 5


# --- verify and status: could not verify, unavailable ----------------------------------------


def test_verify_that_cannot_read_the_source_says_could_not_verify_and_exits_3(
        project: Project, capsys):
    _seed(project)
    assert project.cli("sync", capsys=capsys)[0] == 0
    project.vault.rename(project.root / "renamed")
    code, out, _ = _text(project, capsys, "verify")
    assert code == 3 and out.startswith("could not verify: notes: markdown source 'notes'")
    assert "consistent" not in out
    code, report = project.cli("verify", capsys=capsys)
    assert code == 3 and not report["ok"] and not report["verified"]
    assert "does not exist" in report["errors"]["notes"]


def test_verify_against_qdrant_on_a_closed_port_could_not_verify(project: Project, capsys):
    _seed(project)
    assert project.cli("sync", capsys=capsys)[0] == 0
    _qdrant_on_a_closed_port(project)
    code, out, _ = _text(project, capsys, "verify")
    assert code == 3 and "NOT consistent" not in out
    assert out.startswith("could not verify: notes: Qdrant could not be read: ")
    code, report = project.cli("verify", capsys=capsys)
    assert code == 3 and report["verified"] is False and "Connection refused" in \
        report["errors"]["notes"]


def test_a_difference_found_outweighs_a_source_that_could_not_be_read(project: Project, capsys):
    _seed(project)
    (project.root / "other").mkdir()
    (project.root / "other" / "o.md").write_text("# Other\n\nAnother note.\n")
    project.config["sources"]["other"] = {"kind": "markdown", "path": "other",
                                          "collections": ["notes"]}
    project.save()
    assert project.cli("sync", capsys=capsys)[0] == 0
    with project.qdrant() as store:
        store.delete("notes", [point_id("notes", "n1.md", 0)])
    (project.root / "other").rename(project.root / "gone")
    code, out, _ = _text(project, capsys, "verify")
    lines = out.splitlines()
    assert code == 1 and lines[0] == "NOT consistent"
    assert lines[1].startswith("could not verify: other: markdown source 'other'")


def test_status_flags_a_source_it_cannot_reach_and_still_shows_the_ledger(
        project: Project, capsys):
    _seed(project)
    code, fresh = project.cli("status", capsys=capsys)  # never synced: its collection, at 0
    assert code == 0 and fresh["sources"]["notes"] == {
        "collections": {"notes": {"pending": 0, "synced": 0, "stale": 0, "failed": 0}},
        "error": None}
    assert not (project.root / "state").exists()  # status created nothing
    assert project.cli("sync", capsys=capsys)[0] == 0
    project.vault.rename(project.root / "renamed")
    code, out, _ = _text(project, capsys, "status")
    lines = out.splitlines()
    assert code == 1 and lines[0].startswith("notes         unavailable: markdown source")
    assert lines[2].split() == ["notes", "notes", "5", "0", "0", "0"]
    code, report = project.cli("status", capsys=capsys)
    assert code == 1 and "does not exist" in report["sources"]["notes"]["error"]
    assert report["sources"]["notes"]["collections"]["notes"]["synced"] == 5


# --- repair: one line ------------------------------------------------------------------------


def test_repair_against_qdrant_on_a_closed_port_is_one_line_and_exit_1(project: Project, capsys):
    _seed(project)
    _qdrant_on_a_closed_port(project)
    code, out, err = _text(project, capsys, "repair")
    assert code == 1 and out == ""
    assert [line for line in err.splitlines() if not line[:2].isdigit()] == [
        err.splitlines()[-1]]  # log lines aside, one line: the error
    assert err.splitlines()[-1].startswith("error: Qdrant could not be read: ")
    assert "Connection refused" in err and "Traceback" not in err
    code, report = project.cli("repair", "--prune", capsys=capsys)
    assert code == 1 and report["exit_code"] == 1 and "Connection refused" in report["error"]


# --- one vocabulary --------------------------------------------------------------------------


def test_a_complete_and_a_sampled_check_count_with_one_vocabulary(project: Project, capsys):
    _seed(project)
    assert project.cli("sync", capsys=capsys)[0] == 0
    held = sum(len(points) for points in project.points().values())
    with project.qdrant() as store:
        store.delete("notes", [point_id("notes", "long.md", 1)])
    code, out, _ = _text(project, capsys, "verify")
    assert code == 1 and f"checked 5: missing 1, orphans 0, stale 0, ledger disagreements 1; " \
        f"points {held - 1} of {held} expected" in out
    assert "missing_points" not in out and "surplus" not in out
    code, report = project.cli("verify", capsys=capsys)
    complete = report["collections"]["notes"]["sources"]["notes"]
    vocabulary = {"checked", "missing", "orphans", "stale", "ledger_disagreements", "points",
                  "points_expected"}
    assert vocabulary <= complete.keys() and not {"missing_points", "surplus_points"} & \
        complete.keys()
    assert (complete["missing"], complete["points"], complete["points_expected"]) == (
        1, held - 1, held)

    config = load_config(project.config_file)
    for results in (verify_source(config, "notes"), verify_source(config, "notes", sample=0.2)):
        consistent = _evaluations(results, ["notes"])[0]  # what the UI shows of the check
        counted = set(consistent.metadata) - {"sources", "sampled", "offenders"}
        assert counted == {"checked", "missing", "orphans", "stale", "points",
                           "points_expected"} and not consistent.passed
        assert consistent.metadata["points_expected"].value - \
            consistent.metadata["points"].value == 1  # type: ignore[operator]
    code, out, _ = _text(project, capsys, "verify", "--sample", "0.2")  # long.md not drawn
    assert code == 1 and "missing 0" in out and f"points {held - 1} of {held} expected" in out


# --- inspect ---------------------------------------------------------------------------------


def test_inspect_shows_a_documents_points_beside_its_ledger_row_and_says_they_agree(
        project: Project, capsys):
    _seed(project)
    assert project.cli("sync", capsys=capsys)[0] == 0
    code, found = project.cli("inspect", "notes", "long.md", capsys=capsys)
    chunks = project.points()["long.md"]
    assert code == 0 and found["agrees"] and found["differences"] == []
    assert [p["chunk_index"] for p in found["points"]] == list(range(len(chunks)))
    assert [p["id"] for p in found["points"]] == [
        point_id("notes", "long.md", i) for i in range(len(chunks))]
    assert {p["content_hash"] for p in found["points"]} == {found["ledger"]["content_hash"]}
    assert found["expected"]["chunk_count"] == found["ledger"]["chunk_count"] == len(chunks)
    assert found["ledger"]["status"] == "synced"
    first = found["points"][0]
    assert first["text_head"].startswith("title: Longform") and len(first["text_head"]) <= 83
    assert first["payload"]["tags"] == ["long"] and first["payload"]["path"] == "long.md"
    code, out, _ = _text(project, capsys, "inspect", "notes", "long.md")
    assert code == 0 and out.splitlines()[0] == "notes/long.md in notes: agrees (Qdrant, the " \
        "ledger and the source)"
    assert f"Qdrant: {len(chunks)} point(s)" in out and point_id("notes", "long.md", 0) in out


def test_inspect_names_what_differs_and_an_unknown_document(project: Project, capsys):
    _seed(project)
    assert project.cli("sync", capsys=capsys)[0] == 0
    chunks = len(project.points()["long.md"])
    with project.qdrant() as store:
        store.delete("notes", [point_id("notes", "long.md", 1)])
    code, out, _ = _text(project, capsys, "inspect", "notes", "long.md")
    lines = out.splitlines()
    assert code == 1 and lines[0] == "notes/long.md in notes: differs"
    assert lines[1] == f"  missing: chunk(s) 1 of the {chunks} expected are not in Qdrant"
    assert lines[2] == "  ledger: chunk(s) 1 the ledger claims are not in Qdrant"
    code, found = project.cli("inspect", "notes", "long.md", capsys=capsys)
    assert code == 1 and [d["problem"] for d in found["differences"]] == ["missing", "ledger"]
    assert len(found["points"]) == chunks - 1

    code, out, _ = _text(project, capsys, "inspect", "notes", "nowhere.md")
    assert code == 1 and out.startswith("unknown document: notes/nowhere.md in notes")
    code, found = project.cli("inspect", "notes", "nowhere.md", capsys=capsys)
    assert code == 1 and found["known"] is False and found["points"] == []


def test_inspect_writes_nothing_and_needs_a_source_only_when_several_feed_the_collection(
        project: Project, capsys):
    _seed(project)
    code, found = project.cli("inspect", "notes", "n0.md", capsys=capsys)  # never synced
    assert code == 1 and [d["problem"] for d in found["differences"]] == ["missing"]
    assert found["ledger"] is None and found["expected"]["chunk_count"] == 1
    assert not (project.root / "state").exists()  # no state dir, no ledger, no Qdrant

    (project.root / "other").mkdir()
    (project.root / "other" / "n0.md").write_text("# Other\n\nThe same id, another source.\n")
    project.config["sources"]["other"] = {"kind": "markdown", "path": "other",
                                          "collections": ["notes"]}
    project.save()
    assert project.cli("sync", capsys=capsys)[0] == 0
    code, _, err = _text(project, capsys, "inspect", "notes", "n0.md")
    assert code == 2 and "several sources (notes, other): name one with --source" in err
    code, found = project.cli("inspect", "notes", "n0.md", "--source", "other", capsys=capsys)
    assert code == 0 and found["source"] == "other"
    assert found["points"][0]["text_head"].startswith("title: Other")

    (project.root / "other").rename(project.root / "gone")
    code, found = project.cli("inspect", "notes", "n0.md", "--source", "other", capsys=capsys)
    assert code == 3 and "does not exist" in found["source_error"]
    assert len(found["points"]) == 1 and found["differences"] == []  # Qdrant and ledger agree


# --- the page docs/cli.md --------------------------------------------------------------------

DOCS = Path(__file__).parent.parent / "docs" / "cli.md"


def _block_after(text: str, marker: str) -> str:
    start = text.index("```", text.index(marker))
    start = text.index("\n", start) + 1
    return text[start:text.index("```", start)]


def test_the_configuration_error_example_in_the_cli_page_is_what_the_cli_prints(
        tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch):
    page = DOCS.read_text()
    (tmp_path / "vault").mkdir()
    (tmp_path / "bad.yaml").write_text(_block_after(page, "For example, this `bad.yaml`"))
    printed = _block_after(page, "gives:").splitlines()
    assert printed[0] == "$ vector-sync plan --config bad.yaml" and printed[-2:] == [
        "$ echo $?", "2"]
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["plan", "--config", "bad.yaml"]) == 2
    assert capsys.readouterr().err.splitlines() == printed[1:-2]
    assert "sources.notes.max_file_bytes" in page and ".markdown." not in page
    assert "traceback" not in page.lower()
