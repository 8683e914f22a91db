"""`verify`, `repair` and `inspect`: Qdrant compared with the source and the ledger.

Three outcomes, never confused: consistent (0), NOT consistent (1: something differs, named),
and could not verify (3: a source, Qdrant or the ledger could not be read, and nothing that
could be read differs). A repair that could not reach everything exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from vector_sync.cli.common import (
    FAILED,
    NOT_VERIFIED,
    OK,
    UsageError,
    chosen,
    print_json,
    sources_of,
)
from vector_sync.config import VectorSyncConfig, config_path

if TYPE_CHECKING:
    from vector_sync.core.consistency.compare import Verification
    from vector_sync.core.consistency.inspect import Inspection
    from vector_sync.core.consistency.unmanaged import Unmanaged

# the key in `errors` for the look at what no source accounts for (no source has this name)
UNMANAGED = "(unmanaged)"


def cmd_verify(args: argparse.Namespace, config: VectorSyncConfig) -> int:
    from vector_sync.core.consistency.verify import verify_source
    from vector_sync.core.ledger import LedgerUnavailable
    from vector_sync.core.source import SourceUnavailable
    from vector_sync.core.store import QdrantUnavailable

    results: list[Verification] = []
    errors: dict[str, str] = {}
    for source in sources_of(args, config):
        try:
            results += verify_source(config, source, sample=args.sample)
        except (SourceUnavailable, QdrantUnavailable, LedgerUnavailable) as error:
            errors[source] = str(error)
    try:
        unmanaged = _unmanaged(args, config)
    except (QdrantUnavailable, LedgerUnavailable) as error:
        from vector_sync.core.consistency.unmanaged import Unmanaged

        unmanaged, errors[UNMANAGED] = Unmanaged(), str(error)
    return _print_verification(args, results, errors, unmanaged, repairing=False)


def _unmanaged(args: argparse.Namespace, config: VectorSyncConfig) -> Unmanaged:
    """Qdrant's content no source accounts for; looked for when every source is checked."""
    from vector_sync.core.consistency.unmanaged import Unmanaged, find_unmanaged

    return Unmanaged() if args.source else find_unmanaged(config)


def cmd_repair(args: argparse.Namespace, config: VectorSyncConfig) -> int:
    from vector_sync.cli.runner import sync_source
    from vector_sync.core.consistency.repair import repair

    def sync_in_dagster(source: str) -> str | None:
        return sync_source(config_path(args.config).resolve(), config, source,
                           allow_mass_delete=args.allow_mass_delete, trigger="repair")["error"]

    unmanaged = _unmanaged(args, config)
    if unmanaged and args.prune:
        from vector_sync.core.consistency.unmanaged import prune

        prune(config, unmanaged)
        unmanaged = _unmanaged(args, config)
    results, errors = repair(config, sources_of(args, config), sync_in_dagster)
    return _print_verification(args, results, errors, unmanaged, repairing=True)


def _print_verification(args: argparse.Namespace, results: list[Verification],
                        errors: dict[str, str], unmanaged: Unmanaged, repairing: bool) -> int:
    differs = bool(unmanaged) or not all(r.consistent for r in results)
    code = FAILED if differs or (errors and repairing) else NOT_VERIFIED if errors else OK
    report: dict[str, Any] = {"ok": code == OK, "verified": not errors, "collections": {},
                              "errors": errors, "unmanaged": unmanaged.summary(),
                              "not_managed_here": unmanaged.not_managed_here()}
    for r in results:
        entry = report["collections"].setdefault(r.collection, {"sources": {}})
        entry["sources"][r.source] = {**r.summary(), "offenders": [
            {"problem": p, "doc_id": d} for p, d in r.offenders()]}
    if args.json:
        print_json(report)
        return code
    if differs:
        print("NOT consistent")
    elif not errors:
        print("consistent")
    could_not = "could not repair" if repairing else "could not verify"
    for name, error in errors.items():
        what = "what no source accounts for" if name == UNMANAGED else name
        print(f"{could_not}: {what}: {error}")
    for entry in unmanaged.summary():
        print(f"unmanaged     {entry['collection']:<18}{entry['points']} point(s): "
              f"{entry['what']}{'' if entry['source'] is None else ' ' + repr(entry['source'])}"
              " (`vector-sync repair --prune` deletes them)")
    for other in unmanaged.not_managed_here():
        print(f"not managed here {other['collection']}: made by "
              + (f"deployment {other['deployment']!r}" if other["deployment"] else
                 "another tool") + "; left alone")
    for r in results:
        s = r.summary()
        print(f"{r.source:<14}{r.collection:<18}checked {s['checked']}: missing {s['missing']}, "
              f"orphans {s['orphans']}, stale {s['stale']}, ledger disagreements "
              f"{s['ledger_disagreements']}; points {s['points']} of {s['points_expected']} "
              f"expected ({s['seconds']} s)")
        for problem in r.config_problems:
            print(f"{'':<32}collection: {problem}")
        for problem, doc_id in r.offenders():
            print(f"{'':<32}{problem}: {doc_id}")
        if r.sampled:
            print(f"{'':<32}sampled: {r.sampled}")
        if r.unseen:
            print(f"{'':<32}a sample cannot see: {r.unseen}")
    return code


# --- inspect --------------------------------------------------------------------------------


def cmd_inspect(args: argparse.Namespace, config: VectorSyncConfig) -> int:
    from vector_sync.core.consistency.inspect import inspect_document
    from vector_sync.core.ledger import LedgerUnavailable
    from vector_sync.core.store import QdrantUnavailable

    source = _source_of(args, config)
    try:
        found = inspect_document(config, source, args.collection, args.doc_id)
    except (QdrantUnavailable, LedgerUnavailable) as error:
        print(f"could not verify: {error}", file=sys.stderr)
        if args.json:
            print_json({"error": str(error), "exit_code": NOT_VERIFIED})
        return NOT_VERIFIED
    code = FAILED if found.differences or not found.known else \
        NOT_VERIFIED if found.source_error else OK
    if args.json:
        print_json(found.as_dict())
    else:
        _print_inspection(found)
    return code


def _source_of(args: argparse.Namespace, config: VectorSyncConfig) -> str:
    """The source whose document is meant: doc ids are per source."""
    chosen("collection", args.collection, config.collections)
    feeding = config.sources_feeding(args.collection)
    if args.source is not None:
        if args.source not in feeding:
            raise UsageError(f"source {args.source!r} does not feed {args.collection!r} "
                             f"(fed by: {', '.join(feeding) or 'none'})")
        return str(args.source)
    if len(feeding) != 1:
        raise UsageError(f"collection {args.collection!r} is fed by "
                         + (f"several sources ({', '.join(feeding)}): name one with --source"
                            if feeding else "no source"))
    return feeding[0]


def _print_inspection(found: Inspection) -> None:
    where = f"{found.source}/{found.doc_id} in {found.collection}"
    if not found.known:
        print(f"unknown document: {where}: the source gives it no chunks here, the ledger has "
              "no row and Qdrant holds no point of it")
        return
    if found.agrees:
        print(f"{where}: agrees (Qdrant, the ledger and the source)")
    elif found.differences:
        print(f"{where}: differs")
    else:
        print(f"{where}: could not verify: {found.source_error}")
    for difference in found.differences:
        print(f"  {difference['problem']}: {difference['detail']}")
    if found.source_error and found.differences:
        print(f"  could not verify against the source: {found.source_error}")
    expected = found.expected
    print("expected (the source now): " + (
        "unknown" if found.source_error else "no chunks" if expected is None else
        f"chunk_count {expected['chunk_count']}, content_hash {expected['content_hash']}, "
        f"payload_hash {expected['payload_hash']}"))
    row = found.ledger
    print("ledger: " + ("no row" if row is None else ", ".join(
        f"{key} {row[key]}" for key in ("status", "chunk_count", "content_hash",
                                        "payload_hash", "attempts", "error_code", "last_error")
        if row[key] is not None)))
    print(f"Qdrant: {len(found.points)} point(s)")
    for point in found.points:
        print(f"  #{point['chunk_index']} of {point['chunk_count']}  id {point['id']}"
              + ("" if point["id_computed_by_vector_sync"] else " (not an id vector_sync "
                 "computes)"))
        print(f"      content_hash {point['content_hash']}, payload_hash "
              f"{point['payload_hash']}, payload "
              + json.dumps(point["payload"], default=str, ensure_ascii=False))
        print(f"      text: {point['text_head']}")
