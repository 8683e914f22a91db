"""One collection's embedding split into shards (execution.embed_shards): the points Qdrant
ends up with are exactly those of an unsharded sync, every shard is its own step, a source
that does not feed the collection materializes nothing, and a re-run reuses the vectors."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from vector_sync.config import load_config
from vector_sync.core.pipeline.embed import ShardMismatch, embeddings, merge_shards
from vector_sync.core.pipeline.state_files import EMBEDDINGS, StateFiles, write_rows
from vector_sync.definitions import build_definitions
from vector_sync.defs.jobs import SYNC_JOB
from vector_sync_tests.support import Project, counts, long_note


def _vault(project: Project) -> None:
    for i in range(5):
        project.note(f"long{i}.md", long_note(f"Long {i}", sections=3))
    for i in range(4):
        project.note(f"short{i}.md", f"# Short {i}\n\nShort note {i}.\n")


def test_a_sharded_embedding_holds_exactly_what_one_step_holds(tmp_path: Path, capsys):
    (tmp_path / "one").mkdir()
    one = Project(tmp_path / "one")
    _vault(one)
    code, _ = one.cli("sync", capsys=capsys)
    assert code == 0

    (tmp_path / "sharded").mkdir()
    sharded = Project(tmp_path / "sharded")
    shutil.copytree(one.vault, sharded.vault, dirs_exist_ok=True)
    sharded.config["execution"] = {"embed_shards": 4}
    sharded.save()
    code, report = sharded.cli("sync", capsys=capsys)
    assert code == 0 and counts(report)["added"] == 9
    assert sharded.held() == one.held()
    shard_files = sorted(p.name for p in (sharded.root / "state/embeddings/notes").iterdir())
    assert shard_files == ["notes.parquet"]  # the shard files go once Qdrant holds them

    sharded.note("long0.md", long_note("Long 0", sections=3) + "\nOne more sentence.\n")
    code, report = sharded.cli("sync", capsys=capsys)
    assert code == 0 and counts(report)["updated"] == 1
    assert counts(report)["chunks_embedded"] == 1  # the changed chunk, in its shard
    code, found = sharded.cli("verify", capsys=capsys)
    assert code == 0 and found["ok"]


def test_every_shard_is_a_step_and_an_unfed_collection_gets_nothing(tmp_path: Path):
    project = Project(tmp_path)
    _vault(project)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "o.md").write_text("# Other\n\nAnother vault.\n")
    project.config["execution"] = {"embed_shards": 3}
    project.config["sources"]["other"] = {"kind": "markdown", "path": "other",
                                          "collections": ["others"]}
    project.config["collections"]["others"] = {"embed": ["title", "body"]}
    project.save()
    job = build_definitions(str(project.config_file)).resolve_job_def(SYNC_JOB)
    result = job.execute_in_process(partition_key="notes",
                                    instance=dg.DagsterInstance.ephemeral())
    assert result.success
    done = {e.step_key for e in result.all_events if e.is_step_success}
    assert {f"embeddings_notes.embed_notes_shard[shard_{i}]" for i in range(3)} <= done
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()
                    if e.asset_key is not None}
    assert "embeddings_notes" in materialized and "qdrant_notes" in materialized
    assert "embeddings_others" not in materialized  # notes does not feed it
    assert "qdrant_others" not in materialized


def test_a_shard_file_of_another_change_set_is_refused_by_the_merge(tmp_path: Path, capsys):
    project = Project(tmp_path)
    _vault(project)
    project.config["execution"] = {"embed_shards": 2}
    project.save()
    code, _ = project.cli("sync", capsys=capsys)
    assert code == 0
    config = load_config(project.config_file)
    for i in range(2):  # the shard files again (the sync removed them once applied)
        embeddings(config, "notes", "notes", (i, 2))
    shard = StateFiles(config.state.dir).embeddings("notes", "notes", (1, 2))
    write_rows(shard, EMBEDDINGS, [])  # as if another run had rewritten it
    with pytest.raises(ShardMismatch, match=r"shard-1-of-2\.parquet does not match"):
        merge_shards(config, "notes", "notes", 2)
