"""`migrate plan|start|status|switch|rollback|cleanup`: blue-green rebuilds of a collection
after a model or chunker change (docs/migrations.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vector_sync.cli.common import FAILED, OK, chosen, print_json
from vector_sync.config import VectorSyncConfig

ACTIONS = ("plan", "start", "status", "switch", "rollback", "cleanup")


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    migrate = commands.add_parser(
        "migrate", parents=[common], help="blue-green rebuild after a model or chunker "
        "change: plan (dry run), start, status, switch (gated), rollback, cleanup")
    migrate.add_argument("action", choices=ACTIONS)
    migrate.add_argument("--collection", help="only this collection (default: all)")
    migrate.set_defaults(handler=cmd_migrate)


def _collections(args: argparse.Namespace, config: VectorSyncConfig) -> list[str]:
    return chosen("collection", args.collection, config.collections)


def cmd_migrate(args: argparse.Namespace, config: VectorSyncConfig) -> int:
    from vector_sync.core.generations import engine, report
    from vector_sync.core.source import SourceUnavailable

    collections = _collections(args, config)
    if args.action == "status":
        return _print(args, report.status(config, collections), _status_text)
    if args.action == "plan":
        return _print(args, report.plan(config, collections), _plan_text)
    results: dict[str, Any] = {}
    code = OK
    for collection in collections:
        try:
            if args.action == "cleanup":
                results[collection] = {"dropped": engine.cleanup(config, collection)}
            elif args.action == "start":
                if args.collection is None and not _changed(config, collection):
                    continue  # all collections: only those whose config changed
                built = engine.start(config, collection)
                results[collection] = {"building": built.physical,
                                       "documents_done": built.documents_done,
                                       "documents_total": built.documents_total,
                                       "chunks_embedded": built.chunks_embedded,
                                       "chunks_reused": built.chunks_reused,
                                       "chunks_per_s": built.chunks_per_s}
            elif args.action == "switch":
                if args.collection is None and not _building(config, collection):
                    continue
                results[collection] = engine.switch(config, collection)
            else:
                results[collection] = engine.rollback(config, collection)
        except (engine.MigrationRefused, SourceUnavailable) as error:
            results[collection] = {"error": str(error)}
            print(f"error: {error}", file=sys.stderr)
            code = FAILED
    return _print(args, {"action": args.action, "collections": results}, _result_text, code)


def _changed(config: VectorSyncConfig, collection: str) -> bool:
    from vector_sync.core.generations import report

    entry = report.status(config, [collection])["collections"][collection]
    return entry["state"] in ("pending", "building", "ready")


def _building(config: VectorSyncConfig, collection: str) -> bool:
    from vector_sync.core.generations import report

    entry = report.status(config, [collection])["collections"][collection]
    return entry["building"] is not None or entry["state"] == "switching"


def _print(args: argparse.Namespace, value: dict[str, Any], text: Any, code: int = OK) -> int:
    if args.json:
        print_json(value)
    else:
        text(value)
    return code


def _status_text(value: dict[str, Any]) -> None:
    for name, c in value["collections"].items():
        line = f"{name:<18}{c['state']:<10}serving {c['serving']}"
        if c["building"]:
            eta = "?" if c["eta_s"] is None else f"{c['eta_s']:.0f} s"
            line += (f", building {c['building']}: {c['documents_done']}/"
                     f"{c['documents_total']} documents, {c['chunks_per_s']} chunks/s, "
                     f"ETA {eta}")
        print(line)
        for change in c["changes"]:
            print(f"{'':<18}changed: {change}")


def _plan_text(value: dict[str, Any]) -> None:
    print("migrate plan: dry run, nothing written")
    for name, c in value["collections"].items():
        if not c["rebuild"]:
            print(f"{name:<18}unchanged (serving {c['serving']})")
            continue
        eta = "?" if c["estimated_s"] is None else f"~{c['estimated_s']:.0f} s"
        print(f"{name:<18}rebuild into {c['target']}: {c['documents']} documents, "
              f"{c['chunks_to_embed']} chunks to embed, {c['chunks_to_reuse']} reused, "
              f"{eta} at {c['embedding_chunks_per_s']} chunks/s")
        for change in c["changes"]:
            print(f"{'':<18}changed: {change}")


def _result_text(value: dict[str, Any]) -> None:
    if not value["collections"]:
        print(f"migrate {value['action']}: nothing to do")
    for name, result in value["collections"].items():
        details = ", ".join(f"{k}: {v}" for k, v in result.items() if k != "gate")
        print(f"{name:<18}{details}")
        if result.get("gate"):
            gate = result["gate"]
            print(f"{'':<18}gate: overlap {gate['overlap']}, recall {gate['recall']} over "
                  f"{gate['canaries']} canaries in {gate['seconds']} s")
