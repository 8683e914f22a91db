"""Asset checks: Qdrant verified against the source as it is now (never against our own
bookkeeping alone), and the guard that refuses a mass delete. Checks only report; `repair`
is what writes."""


from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from vector_sync.core.consistency.compare import Verification
from vector_sync.core.consistency.shared import NotVerified, verified_once
from vector_sync.core.consistency.verify import spot_check, verify_source
from vector_sync.core.ledger import LedgerUnavailable
from vector_sync.core.pipeline.diff import mass_delete
from vector_sync.core.pipeline.state_files import StateFiles, read_summary
from vector_sync.core.settings import VectorSyncConfig
from vector_sync.core.source import SourceUnavailable
from vector_sync.core.store import QdrantUnavailable
from vector_sync.defs.assets import QDRANT_POOL, resource
from vector_sync.defs.jobs import GUARD, PLAIN, VERIFY_CHECKS, Names, verify_op
from vector_sync.defs.reports import table

CONSISTENT, VECTORS, LEDGER = VERIFY_CHECKS
# documents found wrong, as `vector-sync verify` counts them; the points held are shown
# beside the points expected (a sampled check finds a lost point by that count)
DIFFERENCES = ("missing", "orphans", "stale")


NAMED = 10  # offenders named in a failed verification's message; its table has them all


class VerifyConfig(dg.Config):
    sources: list[str] = []  # the sources to verify the collection for; none: every one


def _offenders(results: list[Verification]) -> dg.TableMetadataValue:
    return table([{"source": r.source, "problem": problem, "doc_id": doc_id}
                  for r in results for problem, doc_id in r.offenders()],
                 {"source": "string", "problem": "string", "doc_id": "string"})


def _sources_to_verify(context: dg.AssetCheckExecutionContext, config: VerifyConfig,
                       settings: VectorSyncConfig, collection: str) -> list[str]:
    """A sync run verifies its own source; the verify job the sources its config names, or
    every source feeding the collection."""
    if context.has_partition_key:
        wanted = [context.partition_key]
    else:
        unknown = sorted(set(config.sources) - set(settings.sources))
        if unknown:
            raise dg.Failure(description=f"unknown source(s) {', '.join(unknown)}: the config "
                             f"names {', '.join(settings.sources)}")
        wanted = config.sources or list(settings.sources)
    return [s for s in wanted if collection in settings.sources[s].collections]


def consistency_checks(collection: str, names: Names = PLAIN) -> dg.AssetChecksDefinition:
    """Run by every sync (a spot check of its source) and by the verify job (everything, for
    every source or the named ones), so the Checks tab shows a result for every
    materialization, whoever started the run."""
    qdrant_key = names.asset("qdrant", collection)
    specs = [
        dg.AssetCheckSpec(CONSISTENT, asset=qdrant_key,
                          description="Every document of the source has exactly its chunks "
                          "in Qdrant, with current content and payload; nothing else is there."),
        dg.AssetCheckSpec(VECTORS, asset=qdrant_key,
                          description="Vector size, distance and model of the collection "
                          "match the config."),
        dg.AssetCheckSpec(LEDGER, asset=qdrant_key,
                          description="The ledger agrees with what Qdrant holds (where it does "
                          "not, `repair` rewrites it so the next sync fixes Qdrant)."),
    ]

    # can_subset: each check can be executed alone from its page (one verification still
    # serves whichever of them a run selects)
    @dg.multi_asset_check(specs=specs, name=verify_op(collection, names), pool=QDRANT_POOL,
                          can_subset=True, required_resource_keys={names.resource_key})
    def verify(context: dg.AssetCheckExecutionContext,
               config: VerifyConfig) -> Iterator[dg.AssetCheckResult]:
        settings = resource(context, names).load()
        sources = _sources_to_verify(context, config, settings, collection)
        selected = {key.name for key in context.selected_asset_check_keys}
        try:
            results = [result for source in sources for result in (
                # a sync spot-checks what it wrote; the verify job checks everything
                [spot_check(settings, source, collection)] if context.has_partition_key
                else _verified(context, settings, names, source, collection))]
        except (SourceUnavailable, QdrantUnavailable, LedgerUnavailable,
                NotVerified) as error:
            # the run that synced goes on as it was; the checks say why nothing was verified
            results = []
            evaluations = [dg.AssetCheckResult(check_name=name, passed=False,
                                               description=f"not verified: {error}")
                           for name in sorted(selected)]
        else:
            evaluations = [check for check in _evaluations(results, sources)
                           if check.check_name in selected]
        yield from evaluations  # recorded first: the check's page shows what was found
        if not context.has_partition_key:
            _fail_verification(qdrant_key, evaluations, results)

    return verify


def _verified(context: dg.AssetCheckExecutionContext, settings: VectorSyncConfig,
              names: Names, source: str, collection: str) -> list[Verification]:
    """The complete verification of `source` for `collection`, shared with the run's other
    collections that `source` feeds: the source is listed once per run, as by the CLI."""
    selection = context.run.asset_check_selection  # None: the whole job
    checked = [c for c in settings.sources[source].collections if selection is None or any(
        dg.AssetCheckKey(names.asset("qdrant", c), check) in selection
        for check in VERIFY_CHECKS)]
    return verified_once(Path(settings.state.dir), context.run.run_id, source, collection,
                         checked, lambda wanted: verify_source(settings, source, wanted))


def _fail_verification(qdrant_key: dg.AssetKey, evaluations: list[dg.AssetCheckResult],
                       results: list[Verification]) -> None:
    """A verification that found Qdrant wrong (or could not verify it) fails its run, so the
    verify job's run is red when there is something to repair; the failure names what was
    found. A sync's spot check only reports: the sync itself did what it had to."""
    failed = [check for check in evaluations if not check.passed
              and check.severity == dg.AssetCheckSeverity.ERROR]
    if not failed:
        return
    problems = "; ".join(sorted({p for r in results for p in r.config_problems}))
    found = [f"{problem} {doc_id}" for r in results for problem, doc_id in r.offenders()]
    message = "; ".join(f"{qdrant_key.to_user_string()} "
                        f"{check.check_name}: {check.description or problems or 'failed'}"
                        for check in failed)
    if found:
        message += f". Offenders: {', '.join(found[:NAMED])}" + (
            f" and {len(found) - NAMED} more" if len(found) > NAMED else "")
    raise dg.Failure(description=message, allow_retries=False,
                     metadata={"offenders": _offenders(results)} if found else {})


def _evaluations(results: list[Verification], sources: list[str]) -> list[dg.AssetCheckResult]:
    counts = {key: sum(r.summary()[key] for r in results)
              for key in ("checked", *DIFFERENCES, "points", "points_expected")}
    differ = sum(counts[key] for key in DIFFERENCES) or any(
        r.points != r.points_expected for r in results)
    problems = sorted({p for r in results for p in r.config_problems})
    disagreements = sum(len(r.ledger_disagrees) for r in results)
    verified = {"sources": ", ".join(sources) or "none (no source feeds it)",
                "sampled": "; ".join(f"{r.source}: {r.sampled}" for r in results
                                     if r.sampled) or "no: every document"}
    return [
        dg.AssetCheckResult(
            check_name=CONSISTENT, severity=dg.AssetCheckSeverity.ERROR, passed=not differ,
            description="Qdrant differs from the source: see offenders and counts "
            "(`vector-sync repair` or the repair job fixes it)" if differ else None,
            metadata={**verified, **counts, "offenders": _offenders(results)}),
        dg.AssetCheckResult(
            check_name=VECTORS, severity=dg.AssetCheckSeverity.ERROR, passed=not problems,
            metadata={**verified, "problems": "; ".join(problems) or "none"}),
        dg.AssetCheckResult(
            check_name=LEDGER, severity=dg.AssetCheckSeverity.WARN, passed=not disagreements,
            metadata={**verified, "disagreements": disagreements}),
    ]


class GuardConfig(dg.Config):
    allow_mass_delete: bool = False  # set true to let this run delete that much


def guard_check(collection: str, partitions: dg.PartitionsDefinition,
                names: Names = PLAIN) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=names.asset("changes", collection), name=GUARD, blocking=True,
        partitions_def=partitions, required_resource_keys={names.resource_key},
        description="Stops the run before anything is deleted when a source that had "
        "documents yields none, or deletions exceed its max_delete_fraction.",
    )
    def mass_delete_guard(context: dg.AssetCheckExecutionContext,
                          config: GuardConfig) -> dg.AssetCheckResult:
        settings = resource(context, names).load()
        source = context.partition_key
        counts = read_summary(StateFiles(settings.state.dir).changes(collection, source))
        problem = mass_delete(counts, settings.sources[source].max_delete_fraction)
        metadata = {"deleted": counts["deleted"], "documents_before": counts["documents_before"],
                    "documents_now": counts["documents_now"],
                    "allowed_by_run_config": config.allow_mass_delete}
        if problem and not config.allow_mass_delete:
            return dg.AssetCheckResult(
                passed=False, severity=dg.AssetCheckSeverity.ERROR, metadata=metadata,
                description=f"{problem}; nothing was deleted. If this is intended, run "
                f"`vector-sync sync --source {source} --allow-mass-delete`, or launch this run "
                f"with the run config ops.{context.op_def.name}.config.allow_mass_delete: true")
        return dg.AssetCheckResult(passed=True, metadata=metadata)

    return mass_delete_guard
