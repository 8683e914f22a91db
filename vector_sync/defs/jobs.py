"""The jobs, and what a run for one source selects.

Every sync is a run of an asset job over one source partition, selecting only the snapshot
and the chains of the collections that source feeds, with their checks (the mass-delete
guard, failed documents, the verification of that source). The CLI, the sensors, the
launchpad's operator jobs and the catalog's Materialize button all run it so, and the
Checks tab shows the same checks whoever started the run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import dagster as dg

from vector_sync.core.settings import VectorSyncConfig

SYNC_JOB = "sync"  # one source partition: its assets, the mass-delete guard, the checks
SYNC_PENDING_JOB = "sync_all_pending"  # the same, reading only rows not synced
RETRY_JOB = "retry_due"  # the same, reading only failed rows whose retry is due
RESYNC_JOB = "resync_documents"  # the same, reading only the named documents
REPAIR_JOB = "repair"  # prepare_repair (the ledger rewritten from Qdrant), then the same
VERIFY_JOB = "verify"  # the consistency checks, for every source or the ones named
TAG_SOURCE, TAG_TRIGGER = "vector_sync/source", "vector_sync/trigger"
TAG_DOCUMENTS = "vector_sync/documents"  # what a targeted run reads
OPERATOR = {TAG_TRIGGER: "operator"}  # a sensor's or the CLI's own tags win

# what an operator job's snapshot does without being told (the run config can still say
# otherwise); resync_documents needs its ids
PRESETS: dict[str, dict[str, bool]] = {RETRY_JOB: {"retry_due": True},
                                       SYNC_PENDING_JOB: {"pending": True}}

GUARD = "mass_delete_guard"
FAILED = "failed_documents"
EVENTS_DELIVERED = "events_delivered"  # with event sinks only (defs/events.py)
VERIFY_CHECKS = ("consistent_with_source", "vectors_match_config", "ledger_matches_qdrant")
STAGES = ("changes", "embeddings", "qdrant")
SNAPSHOT = dg.AssetKey("source_snapshot")
PREPARE_REPAIR = dg.AssetKey("prepare_repair")  # the repair job's first step
SOURCES_GROUP = "sources"


def group_of(collection: str) -> str:
    """Each collection's chain is a group of its own (group names are letters, digits, _)."""
    return re.sub(r"\W", "_", collection)


@dataclass(frozen=True)
class Names:
    """The names one set of vector_sync definitions takes in a code location. Without a
    prefix they are the plain ones (`qdrant_notes`, the `sync` job, `watch_notes`); with
    one (the component's `key_prefix`, e.g. `team_a`), every asset key is under it
    (`team_a/qdrant_notes`: the UI still labels the box `qdrant_notes`) and every job,
    sensor, op, group and resource key starts with it, so two configurations (two teams'
    vaults) live in one code location without clashing. `group` puts every asset into one
    group of that name."""

    prefix: str | None = None
    group: str | None = None

    def key(self, name: str) -> dg.AssetKey:
        return dg.AssetKey([self.prefix, name] if self.prefix else [name])

    def asset(self, stage: str, collection: str) -> dg.AssetKey:
        """`qdrant_notes`: one part (under the prefix), because the UI labels a box by a
        key's last part, and a box must say both its stage and its collection."""
        return self.key(f"{stage}_{collection}")

    @property
    def snapshot(self) -> dg.AssetKey:
        return self.key(SNAPSHOT.path[-1])

    @property
    def prepare_repair(self) -> dg.AssetKey:
        return self.key(PREPARE_REPAIR.path[-1])

    def name(self, name: str) -> str:
        """A job, sensor or op name (letters, digits and _)."""
        return f"{self.prefix}_{name}" if self.prefix else name

    def job(self, name: str) -> str:
        return self.name(name)

    def op(self, key: dg.AssetKey) -> str:
        """The op an asset's run config goes under: `source_snapshot`, with a prefix
        `team_a__source_snapshot`."""
        return key.to_python_identifier()

    def group_of(self, collection: str) -> str:
        return self.group or self.name(group_of(collection))

    @property
    def sources_group(self) -> str:
        return self.group or self.name(SOURCES_GROUP)

    @property
    def resource_key(self) -> str:
        return f"vector_sync_{self.prefix}" if self.prefix else "vector_sync"

    @property
    def jobs(self) -> frozenset[str]:
        return frozenset(self.job(name) for name in (
            SYNC_JOB, SYNC_PENDING_JOB, RETRY_JOB, RESYNC_JOB, REPAIR_JOB))

    def is_job(self, job_name: str, name: str) -> bool:
        return job_name == self.job(name)

    def unprefixed(self, job_name: str) -> str:
        """`team_a_sync` -> `sync`: what a job of these definitions is (PRESETS)."""
        return job_name.removeprefix(f"{self.prefix}_") if self.prefix else job_name


PLAIN = Names()


def own_assets(config: VectorSyncConfig, names: Names = PLAIN,
               repair: bool = True) -> dg.AssetSelection:
    """The assets these definitions make, by key (never `all()`: the code location may hold
    a team's own assets, downstream of `qdrant_<collection>`, which a sync must not run).
    Without `repair`, prepare_repair is left out: every job but repair, as a sync never
    repairs (nor prunes)."""
    return dg.AssetSelection.assets(
        *([names.prepare_repair] if repair else []), names.snapshot,
        *(names.asset(stage, collection) for collection in config.collections
          for stage in STAGES))


def asset_key(stage: str, collection: str, names: Names = PLAIN) -> dg.AssetKey:
    return names.asset(stage, collection)


def verify_op(collection: str, names: Names = PLAIN) -> str:
    """The op of a collection's consistency checks (the verify job configures it)."""
    return names.name(f"verify_{group_of(collection)}")


def guard_key(collection: str, names: Names = PLAIN) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(names.asset("changes", collection), GUARD)


def sync_assets(config: VectorSyncConfig, source: str,
                names: Names = PLAIN) -> list[dg.AssetKey]:
    """What a sync of `source` materializes: its snapshot and the chains it feeds."""
    return [names.snapshot, *(names.asset(stage, collection)
                              for collection in config.sources[source].collections
                              for stage in STAGES)]


def collection_checks(collection: str, names: Names = PLAIN) -> list[dg.AssetCheckKey]:
    """Every check of a collection's chain; a sync of a source feeding it runs them all."""
    qdrant = names.asset("qdrant", collection)
    return [guard_key(collection, names), *(dg.AssetCheckKey(qdrant, name)
                                            for name in (FAILED, *VERIFY_CHECKS))]


def sync_checks(config: VectorSyncConfig, source: str,
                names: Names = PLAIN) -> list[dg.AssetCheckKey]:
    # with event sinks, each collection also has `events_delivered` (defs/events.py): a sync
    # shows the backlog its own Qdrant steps left
    extra = (EVENTS_DELIVERED,) if config.events.enabled else ()
    return [key for collection in config.sources[source].collections
            for key in (*collection_checks(collection, names), *(
                dg.AssetCheckKey(names.asset("qdrant", collection), name) for name in extra))]


def sync_job_for(defs: dg.Definitions, config: VectorSyncConfig,
                 source: str, names: Names = PLAIN) -> dg.JobDefinition:
    """The sync job as a run for `source` selects it (the CLI, the sensors' requests): the
    snapshot, the chains of the collections the source feeds, and their checks."""
    return defs.resolve_job_def(names.job(SYNC_JOB)).get_subset(
        asset_selection=set(sync_assets(config, source, names)),
        asset_check_selection=set(sync_checks(config, source, names)))


def _operator_job(names: Names, executor: dg.ExecutorDefinition | None, name: str,
                  description: str, op_config: dict[str, dict[str, object]],
                  selection: dg.AssetSelection,
                  ) -> dg.UnresolvedAssetJobDefinition:
    """A sync job for the launchpad, which does what its name says. Dagster does not show a
    partitioned job's run config on its launchpad until a partition is picked (the editor
    starts from the defaults of source_snapshot's config, which every job shares): the
    snapshot takes the job's preset (PRESETS) itself, so an unset value means "as the job
    says", and `op_config` (by op: the preset, and the values a person may edit) is what
    picking a partition writes into the editor."""
    return dg.define_asset_job(
        names.job(name), selection=selection, description=description, tags=OPERATOR,
        executor_def=executor,
        config={"ops": {op: {"config": values} for op, values in op_config.items()}})


def _snapshot_preset(names: Names, job: str, **values: object) -> dict[str, dict[str, object]]:
    return {names.op(names.snapshot): {**PRESETS.get(job, {}), **values}}


def build_jobs(config: VectorSyncConfig, names: Names = PLAIN,
               executor: dg.ExecutorDefinition | None = None,
               ) -> list[dg.UnresolvedAssetJobDefinition]:
    """The jobs; `executor` (the config's `execution`) is set on each, so that they run
    as configured in a code location whose default executor is someone else's."""
    qdrant = [names.asset("qdrant", c) for c in config.collections]
    verify_ops = [verify_op(c, names) for c in config.collections]
    sync = own_assets(config, names, repair=False)
    return [
        dg.define_asset_job(
            names.job(SYNC_JOB), selection=sync, tags=OPERATOR,
            executor_def=executor,
            description="Sync now: the chosen source (partition; a backfill over every "
            "partition syncs them all): snapshot, diff, embed, apply, then the checks. The "
            "sensors and the CLI run this job too. Optional run config of source_snapshot: "
            "`full` (ignore version hints), `doc_ids`, `retry_due`, `pending`. "
            "Collections the source does not feed are skipped."),
        _operator_job(
            names, executor, RETRY_JOB, "Retry what is due: the failed documents of the "
            "chosen source(s) whose backoff has expired, and only those (their stored "
            "vectors are reused).",
            _snapshot_preset(names, RETRY_JOB), sync),
        _operator_job(
            names, executor, SYNC_PENDING_JOB, "Sync every document of the chosen "
            "source(s) with a pending, stale or failed row, whether or not its retry is due.",
            _snapshot_preset(names, SYNC_PENDING_JOB), sync),
        _operator_job(
            names, executor, RESYNC_JOB, "Re-sync named documents of the chosen source: "
            "read them again and apply what changed; the rest stay as they are. Run "
            "config: the ids under "
            "ops.source_snapshot.config.doc_ids, as `vector-sync status` and the "
            "failed_documents table show them.",
            _snapshot_preset(names, RESYNC_JOB, doc_ids=[]), sync),
        _operator_job(
            names, executor, REPAIR_JOB, "Repair the chosen source: prepare_repair "
            "rewrites the ledger from what Qdrant holds (and rebuilds a collection whose "
            "vectors do not fit the "
            "config), then the same run syncs the source, so Qdrant matches it. Run config: "
            "`prune: true` (ops.prepare_repair.config) first deletes points of sources and "
            "collections the config no longer names.",
            {names.op(names.prepare_repair): {"prune": False}}, own_assets(config, names)),
        dg.define_asset_job(
            names.job(VERIFY_JOB), executor_def=executor, selection=dg.AssetSelection.checks(
                *(dg.AssetCheckKey(q, name) for q in qdrant for name in VERIFY_CHECKS)),
            tags=OPERATOR,
            config=dg.ConfigMapping(
                config_schema={"sources": dg.Field(
                    [str], default_value=[], description="sources to verify; [] for all")},
                config_fn=lambda config: {"ops": {op: {"config": {"sources": config["sources"]}}
                                                  for op in verify_ops}}),
            description="Verify Qdrant against every source as it is now and against the "
            "ledger (reads only). Config: `sources: [name, ...]` to verify only those. "
            "`vector-sync repair` or the repair job fixes what it finds."),
    ]
