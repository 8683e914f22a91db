"""`vector-sync`: the same asset graph as the UI, run in-process.

Exit codes: 0 success; 1 some documents failed or a source could not be synced;
2 the configuration (or a command-line argument) is wrong.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vector_sync.config import ConfigError, VectorSyncConfig, config_path, load_config

if TYPE_CHECKING:
    from vector_sync.core.unmanaged import Unmanaged

BAD_CONFIG = 2


class UsageError(Exception):
    """A command-line argument names something the config does not have."""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("vector_sync").setLevel(logging.INFO)  # progress, on stderr
    from vector_sync.core.ledger import LedgerUnavailable
    from vector_sync.core.store import QdrantUnavailable

    try:
        config = load_config(args.config)
        return int(args.handler(args, config))
    except (ConfigError, UsageError) as error:
        return _failed(args, error, BAD_CONFIG)
    except (LedgerUnavailable, QdrantUnavailable) as error:
        return _failed(args, error, 1)


def _failed(args: argparse.Namespace, error: Exception, code: int) -> int:
    """A command that could not run: the reason on stderr and, with --json, as the one JSON
    document on stdout (a script reading stdout must not get nothing)."""
    print(f"error: {error}", file=sys.stderr)
    if args.json:
        _print_json({"error": str(error), "exit_code": code})
    return code


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=None,
                        help="config file (default: $VECTOR_SYNC_CONFIG, else ./vector_sync.yaml)")
    common.add_argument("--json", action="store_true",
                        help="print one JSON document instead of text")
    parser = argparse.ArgumentParser(
        prog="vector-sync", description="Keep Qdrant collections in sync with sources.",
        epilog="Every command takes --config and --json (after the command name).")
    commands = parser.add_subparsers(dest="command", required=True)

    sync = commands.add_parser("sync", parents=[common], help="snapshot, diff, embed, apply")
    sync.add_argument("--source", help="only this source (default: all)")
    sync.add_argument("--full", action="store_true", help="read every document, ignore hints")
    sync.add_argument("--allow-mass-delete", action="store_true",
                      help="let this run delete more than max_delete_fraction of a source")
    sync.set_defaults(handler=cmd_sync)

    plan = commands.add_parser("plan", parents=[common],
                               help="dry run: the counts sync would report; writes nothing")
    plan.add_argument("--source")
    plan.add_argument("--full", action="store_true")
    plan.set_defaults(handler=cmd_plan)

    verify = commands.add_parser("verify", parents=[common],
                                 help="check Qdrant against the source and the ledger")
    verify.add_argument("--source")
    verify.add_argument("--sample", type=float, metavar="FRACTION",
                        help="check only this fraction of documents (by point id) plus counts")
    verify.set_defaults(handler=cmd_verify)

    repair = commands.add_parser("repair", parents=[common],
                                 help="make Qdrant match the source; rewrites only what differs")
    repair.add_argument("--source")
    repair.add_argument("--allow-mass-delete", action="store_true")
    repair.add_argument("--prune", action="store_true",
                        help="also delete points of sources and collections the config no "
                        "longer names")
    repair.set_defaults(handler=cmd_repair)

    status = commands.add_parser("status", parents=[common],
                                 help="ledger counts by status; failed documents with reasons")
    status.add_argument("--source")
    status.add_argument("--limit", type=int, default=50, help="failed rows to list")
    status.set_defaults(handler=cmd_status)

    search = commands.add_parser("search", parents=[common], help="semantic search")
    search.add_argument("collection")
    search.add_argument("text")
    search.add_argument("--limit", type=int, default=5)
    search.set_defaults(handler=cmd_search)
    return parser


def _sources(args: argparse.Namespace, config: VectorSyncConfig) -> list[str]:
    if args.source is None:
        return list(config.sources)
    if args.source not in config.sources:
        raise UsageError(f"unknown source {args.source!r} (configured: "
                         f"{', '.join(config.sources)})")
    return [args.source]


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False, default=str))


# --- sync / plan ----------------------------------------------------------------------------

COLUMNS = ("added", "updated", "payload_updated", "deleted", "unchanged", "failed",
           "chunks_embedded", "chunks_reused")


def cmd_sync(args: argparse.Namespace, config: VectorSyncConfig) -> int:
    from vector_sync.defs.run import sync_source  # Dagster import is slow: only when needed

    report: dict[str, Any] = {"sources": {}}
    for source in _sources(args, config):
        report["sources"][source] = sync_source(
            config_path(args.config).resolve(), config, source, full=args.full,
            allow_mass_delete=args.allow_mass_delete)
    _print_counts(args, report, "sync")
    return 1 if _has_failures(report) else 0


def cmd_plan(args: argparse.Namespace, config: VectorSyncConfig) -> int:
    from vector_sync.core.plan import plan_source, read_only_ledger
    from vector_sync.core.source import SourceUnavailable

    report: dict[str, Any] = {"sources": {}}
    with read_only_ledger(config) as ledger:
        for source in _sources(args, config):
            try:
                counts = plan_source(config, source, ledger, full=args.full)
                report["sources"][source] = {"collections": counts, "error": None,
                                             "warnings": []}  # as sync's; plan checks nothing
            except SourceUnavailable as error:
                report["sources"][source] = {"collections": {}, "error": str(error),
                                             "warnings": []}
    _print_counts(args, report, "plan")
    return 1 if any(s["error"] for s in report["sources"].values()) else 0


def _has_failures(report: dict[str, Any]) -> bool:
    return any(
        source["error"] or any(c["failed"] for c in source["collections"].values())
        for source in report["sources"].values()
    )


def _print_counts(args: argparse.Namespace, report: dict[str, Any], verb: str) -> None:
    if args.json:
        _print_json(report)
        return
    labels = ("added", "updated", "payload", "deleted", "unchanged", "failed", "embedded",
              "reused")
    print(f"{verb}: " + ("dry run, nothing written" if verb == "plan" else "applied to Qdrant"))
    print(f"{'source':<14}{'collection':<18}" + "".join(f"{label:>10}" for label in labels))
    for source, result in report["sources"].items():
        if result["error"]:
            print(f"{source:<14}error: {result['error']}")
        for collection, counts in result["collections"].items():
            print(f"{source:<14}{collection:<18}"
                  + "".join(f"{counts.get(c, '-'):>10}" for c in COLUMNS))
            if counts.get("mass_delete_guard"):
                print(f"{'':<14}sync would stop: {counts['mass_delete_guard']} "
                      "(--allow-mass-delete to proceed)")
    print("(documents; 'payload' = payload-only updates; chunks 'embedded' by the model and "
          "'reused' from vectors already made)")
    for result in report["sources"].values():
        for warning in result.get("warnings", ()):
            print(f"warning: Qdrant spot check: {warning}; `vector-sync verify` names the "
                  "documents, `vector-sync repair` fixes them")


# --- verify / repair -----------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace, config: VectorSyncConfig) -> int:
    from vector_sync.core.source import SourceUnavailable
    from vector_sync.core.verify import verify_source

    results, errors = [], {}
    for source in _sources(args, config):
        try:
            results += verify_source(config, source, sample=args.sample)
        except SourceUnavailable as error:
            errors[source] = str(error)
    return _print_verification(args, results, errors, _unmanaged(args, config))


def _unmanaged(args: argparse.Namespace, config: VectorSyncConfig) -> Unmanaged:
    """Qdrant's content no source accounts for; looked for when every source is checked."""
    from vector_sync.core.unmanaged import Unmanaged, find_unmanaged

    return Unmanaged() if args.source else find_unmanaged(config)


def cmd_repair(args: argparse.Namespace, config: VectorSyncConfig) -> int:
    from vector_sync.core.repair import repair
    from vector_sync.defs.run import sync_source

    def sync_in_dagster(source: str) -> str | None:
        return sync_source(config_path(args.config).resolve(), config, source,
                           allow_mass_delete=args.allow_mass_delete, trigger="repair")["error"]

    unmanaged = _unmanaged(args, config)
    if unmanaged and args.prune:
        from vector_sync.core.unmanaged import prune

        prune(config, unmanaged)
        unmanaged = _unmanaged(args, config)
    results, errors = repair(config, _sources(args, config), sync_in_dagster)
    return _print_verification(args, results, errors, unmanaged)


def _print_verification(args: argparse.Namespace, results: list[Any],
                        errors: dict[str, str], unmanaged: Unmanaged) -> int:
    ok = not errors and not unmanaged and all(r.consistent for r in results)
    report: dict[str, Any] = {"ok": ok, "collections": {}, "errors": errors,
                              "unmanaged": unmanaged.summary()}
    for r in results:
        entry = report["collections"].setdefault(r.collection, {"sources": {}})
        entry["sources"][r.source] = {**r.summary(), "offenders": [
            {"problem": p, "doc_id": d} for p, d in r.offenders()]}
    if args.json:
        _print_json(report)
        return 0 if ok else 1
    print("consistent" if ok else "NOT consistent")
    for source, error in errors.items():
        print(f"{source:<14}error: {error}")
    for entry in unmanaged.summary():
        print(f"unmanaged     {entry['collection']:<18}{entry['points']} point(s): "
              f"{entry['what']}{'' if entry['source'] is None else ' ' + repr(entry['source'])}"
              " (`vector-sync repair --prune` deletes them)")
    for r in results:
        s = r.summary()
        print(f"{r.source:<14}{r.collection:<18}checked {s['checked']}, points {s['points']}: "
              f"missing {s['missing']}, orphans {s['orphans']}, stale {s['stale']}, ledger "
              f"disagreements {s['ledger_disagreements']} ({s['seconds']} s)")
        for problem in r.config_problems:
            print(f"{'':<32}collection: {problem}")
        for problem, doc_id in r.offenders():
            print(f"{'':<32}{problem}: {doc_id}")
        if r.sampled:
            print(f"{'':<32}sampled: {r.sampled}")
    return 0 if ok else 1


# --- status / search ------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace, config: VectorSyncConfig) -> int:
    from vector_sync.core.plan import read_only_ledger

    sources = _sources(args, config)
    with read_only_ledger(config) as ledger:
        counts = {k: v for k, v in ledger.counts().items() if k[0] in sources}
        failed = [row for s in sources for row in ledger.failed(s, limit=args.limit)]
    failed_rows = [{
        "source": r.source, "collection": r.collection, "doc_id": r.doc_id,
        "error_code": r.error_code, "error": r.last_error, "attempts": r.attempts,
        "last_attempt_at": r.last_attempt_at, "next_attempt_at": r.next_attempt_at,
        "gave_up": r.next_attempt_at is None,
    } for r in failed]
    if args.json:
        _print_json({
            "sources": {s: {"collections": {c: dict(n) for (src, c), n in counts.items()
                                            if src == s}} for s in sources},
            "failed": failed_rows,
        })
        return 0
    print(f"{'source':<14}{'collection':<18}{'synced':>8}{'pending':>9}{'stale':>7}{'failed':>8}")
    for (source, collection), by_status in sorted(counts.items()):
        print(f"{source:<14}{collection:<18}" + "".join(
            f"{by_status.get(s, 0):>{w}}" for s, w in
            (("synced", 8), ("pending", 9), ("stale", 7), ("failed", 8))))
    if failed_rows:
        print("\nfailed documents:")
        for row in failed_rows:
            print(f"  {row['source']}/{row['doc_id']} [{row['collection']}] "
                  f"{row['error_code']}: {row['error']} (attempts: {row['attempts']}, "
                  + ("retries exhausted: fixed by an edit, `sync --full` or the "
                     "resync_documents job)" if row["gave_up"] else
                     f"next retry {row['next_attempt_at']:%Y-%m-%d %H:%M:%S} UTC)"))
    return 0


def cmd_search(args: argparse.Namespace, config: VectorSyncConfig) -> int:
    from vector_sync.core.embedder import Embedder
    from vector_sync.core.store import QdrantUnavailable, open_store

    if args.collection not in config.collections:
        raise UsageError(f"unknown collection {args.collection!r} (configured: "
                         f"{', '.join(config.collections)})")
    vector = Embedder(config.embedding_for(args.collection)).embed([args.text])[0]
    with open_store(config.qdrant, config.state) as store:
        try:
            points = store.search(args.collection, vector.tolist(), args.limit) \
                if store.exists(args.collection) else []
        except Exception as error:  # noqa: BLE001 - a server that is down or refuses us
            raise QdrantUnavailable(f"Qdrant search failed: {type(error).__name__}: {error}") \
                from None
    hits = [{"score": round(float(p.score), 4), **{k: (p.payload or {}).get(k) for k in
             ("source", "doc_id", "chunk_index", "text")}} for p in points]
    if args.json:
        _print_json(hits)
    elif not hits:
        print(f"no results in {args.collection!r} (has it been synced?)")
    for hit in hits if not args.json else []:
        snippet = " ".join(str(hit["text"]).split())[:160]
        print(f"{hit['score']:.3f}  {hit['source']}/{hit['doc_id']}#{hit['chunk_index']}\n"
              f"       {snippet}")
    return 0


def run() -> None:  # pragma: no cover - the console script; tests call main()
    """`vector-sync`: main(), then exit without the interpreter's teardown. Everything the
    command opened is closed by then (ledger, Qdrant, the Dagster instance); tearing down
    the objects and modules of a Dagster run would only add about 0.6 s to every command."""
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    run()
