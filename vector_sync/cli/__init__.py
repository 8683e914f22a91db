"""`vector-sync`: the same asset graph as the UI, run in-process.

Exit codes:
  0  success (synced; consistent; the document agrees)
  1  something failed or differs: documents failed, a source could not be synced or is
     unavailable (`status`), Qdrant is not consistent, a document disagrees or is unknown
  2  the configuration (or a command-line argument) is wrong
  3  `verify` or `inspect` could not read what it compares (a source, Qdrant or the
     ledger unavailable) and found nothing wrong in what it could read: no verdict
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from vector_sync.__about__ import __version__
from vector_sync.cli.common import BAD_CONFIG, FAILED, UsageError, print_json
from vector_sync.cli.consistency import cmd_inspect, cmd_repair, cmd_verify
from vector_sync.cli.events import add_commands as add_event_commands
from vector_sync.cli.init import add_parser as add_init_parser
from vector_sync.cli.migrate import add_parser as add_migrate_parser
from vector_sync.cli.status import cmd_search, cmd_status
from vector_sync.cli.sync import cmd_plan, cmd_sync
from vector_sync.config import ConfigError, VectorSyncConfig, load_config

__all__ = ["UsageError", "main", "run"]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("vector_sync").setLevel(logging.INFO)  # progress, on stderr
    from vector_sync.core.ledger import LedgerUnavailable
    from vector_sync.core.store import QdrantUnavailable

    if not getattr(args, "needs_config", True):  # `init` writes the config
        return int(args.handler(args))
    try:
        config = load_config(args.config)
        if args.command not in ("migrate",):  # every other door reads the serving generation
            config = _serving(config, writes=args.command in ("sync", "repair"))
        return int(args.handler(args, config))
    except (ConfigError, UsageError) as error:
        return _failed(args, error, BAD_CONFIG)
    except (LedgerUnavailable, QdrantUnavailable) as error:
        return _failed(args, error, FAILED)


def _serving(config: VectorSyncConfig, writes: bool) -> VectorSyncConfig:
    from vector_sync.core.generations.serving import serving_config

    return serving_config(config, register=writes)


def _failed(args: argparse.Namespace, error: Exception, code: int) -> int:
    """A command that could not run: the reason on stderr and, with --json, as the one JSON
    document on stdout (a script reading stdout must not get nothing)."""
    print(f"error: {error}", file=sys.stderr)
    if args.json:
        print_json({"error": str(error), "exit_code": code})
    return code


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=None,
                        help="config file (default: $VECTOR_SYNC_CONFIG, else ./vector_sync.yaml)")
    common.add_argument("--json", action="store_true",
                        help="print one JSON document instead of text")
    parser = argparse.ArgumentParser(
        prog="vector-sync", description="Keep Qdrant collections in sync with sources.",
        epilog="Every command takes --config and --json (after the command name). Exit "
        "codes: 0 success, 1 failed or not consistent, 2 bad configuration or argument, "
        "3 could not verify.")
    parser.add_argument("--version", action="version", version=f"vector-sync {__version__}")
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

    inspect = commands.add_parser(
        "inspect", parents=[common], help="what Qdrant holds for one document, beside its "
        "ledger row and the source's expected state; writes nothing")
    inspect.add_argument("collection")
    inspect.add_argument("doc_id")
    inspect.add_argument("--source", help="the source of the document (needed when several "
                         "sources feed the collection)")
    inspect.set_defaults(handler=cmd_inspect)

    status = commands.add_parser("status", parents=[common],
                                 help="ledger counts by status; failed documents with reasons; "
                                 "sources that cannot be reached")
    status.add_argument("--source")
    status.add_argument("--limit", type=int, default=50, help="failed rows to list")
    status.add_argument("--storage", action="store_true",
                        help="also the disk space of the ledger, the state dir and Qdrant, "
                        "and their ratio")
    status.set_defaults(handler=cmd_status)

    search = commands.add_parser("search", parents=[common], help="semantic search")
    search.add_argument("collection")
    search.add_argument("text")
    search.add_argument("--limit", type=int, default=5)
    search.add_argument("--generation", choices=("serving", "building"), default="serving",
                        help="building: the generation a migration is building, with its "
                        "own model (to compare before switching)")
    search.set_defaults(handler=cmd_search)

    add_migrate_parser(commands, common)
    add_init_parser(commands, common)
    add_event_commands(commands, common)
    return parser


def run() -> None:  # pragma: no cover - the console script; tests call main()
    """`vector-sync`: main(), then exit without the interpreter's teardown. Everything the
    command opened is closed by then (ledger, Qdrant, the Dagster instance); tearing down
    the objects and modules of a Dagster run would only add about 0.6 s to every command."""
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
