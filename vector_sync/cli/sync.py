"""`sync` and `plan`: per source and collection, the counts of documents."""

from __future__ import annotations

import argparse
from typing import Any

from vector_sync.cli.common import FAILED, OK, print_json, sources_of
from vector_sync.config import VectorSyncConfig, config_path
from vector_sync.core.pipeline.rows import OUTCOMES

COLUMNS = (*OUTCOMES, "chunks_embedded", "chunks_reused")
LABELS = ("added", "updated", "payload", "deleted", "unchanged", "failed", "embedded", "reused")


def cmd_sync(args: argparse.Namespace, config: VectorSyncConfig) -> int:
    from vector_sync.cli.runner import sync_source  # Dagster import is slow: only when needed

    report: dict[str, Any] = {"sources": {}}
    for source in sources_of(args, config):
        report["sources"][source] = sync_source(
            config_path(args.config).resolve(), config, source, full=args.full,
            allow_mass_delete=args.allow_mass_delete)
    report.update(_migrations(args))
    print_counts(args, report, "sync")
    for message in report.get("migration_pending", {}).values() if not args.json else ():
        print(f"migration pending: {message}")
    return FAILED if _has_failures(report) else OK


def cmd_plan(args: argparse.Namespace, config: VectorSyncConfig) -> int:
    from vector_sync.core.pipeline.plan import plan_source, read_only_ledger
    from vector_sync.core.source import SourceUnavailable

    report: dict[str, Any] = {"sources": {}}
    with read_only_ledger(config) as ledger:
        for source in sources_of(args, config):
            try:
                counts = plan_source(config, source, ledger, full=args.full)
                report["sources"][source] = {"collections": counts, "error": None,
                                             "warnings": []}  # as sync's; plan checks nothing
            except SourceUnavailable as error:
                report["sources"][source] = {"collections": {}, "error": str(error),
                                             "warnings": []}
    print_counts(args, report, "plan")
    return FAILED if any(s["error"] for s in report["sources"].values()) else OK


def _migrations(args: argparse.Namespace) -> dict[str, Any]:
    """Collections whose config changed (the sync kept their serving generation), and with
    `migration.auto` the migrations this sync started (docs/migrations.md)."""
    from vector_sync.config import load_config
    from vector_sync.core.generations import engine
    from vector_sync.core.generations.serving import serving_view
    from vector_sync.core.ledger import LedgerUnavailable

    config = load_config(args.config)  # as written, not as served
    try:
        view = serving_view(config)
    except LedgerUnavailable:  # the sources' own errors already say so
        return {}
    if not view.pending:  # the report is the one plan prints, key for key
        return {}
    found: dict[str, Any] = {"migration_pending": {
        c: view.message(c) for c in view.pending}}
    if config.migration.auto:
        found["migrations_started"] = {
            c: engine.start(config, c).physical for c in view.pending}
    return found


def _has_failures(report: dict[str, Any]) -> bool:
    return any(
        source["error"] or any(c["failed"] for c in source["collections"].values())
        for source in report["sources"].values()
    )


def print_counts(args: argparse.Namespace, report: dict[str, Any], verb: str) -> None:
    """What failed first, per source; then a row per collection that has counts (a source
    whose run stopped early has none: no row of zeros pretends it ran)."""
    if args.json:
        print_json(report)
        return
    sources = report["sources"]
    failed = [source for source, result in sources.items() if result["error"]]
    if verb == "plan":
        print("plan: dry run, nothing written")
    elif failed:
        print(f"sync: FAILED for {', '.join(failed)}" + (
            "; the other sources were applied to Qdrant" if len(failed) < len(sources) else ""))
    else:
        print("sync: applied to Qdrant")
    for source in failed:
        print(f"{source:<14}error: {sources[source]['error']}")
    rows = [(source, collection, counts) for source, result in sources.items()
            for collection, counts in result["collections"].items()]
    if rows:
        print(f"{'source':<14}{'collection':<18}" + "".join(f"{label:>10}" for label in LABELS))
    for source, collection, counts in rows:
        print(f"{source:<14}{collection:<18}"
              + "".join(f"{counts.get(c, '-'):>10}" for c in COLUMNS))
        if counts.get("mass_delete_guard"):
            print(f"{'':<14}sync would stop: {counts['mass_delete_guard']} "
                  "(--allow-mass-delete to proceed)")
    if rows:
        print("(documents; 'payload' = payload-only updates; chunks 'embedded' by the model "
              "and 'reused' from vectors already made)")
    for result in sources.values():
        for warning in result.get("warnings", ()):
            print(f"warning: Qdrant spot check: {warning}" + (
                "" if "not verified" in warning else "; `vector-sync verify` names the "
                "documents, `vector-sync repair` fixes them"))
