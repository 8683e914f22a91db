"""`vector-sync init [--kind K] [--force]`: a commented `vector_sync.yaml` for a source kind,
written into the current folder, and what to run next. It needs no configuration (it
writes one) and never imports Dagster."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vector_sync.cli.common import BAD_CONFIG, OK, print_json

FILE = "vector_sync.yaml"


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    from vector_sync.templates import DEFAULT_KIND

    init = commands.add_parser(
        "init", parents=[common], help="write a commented vector_sync.yaml for a source kind "
        "into the current folder")
    init.add_argument("--kind", default=DEFAULT_KIND,
                      help=f"the source kind (default: {DEFAULT_KIND})")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(handler=cmd_init, needs_config=False)


def cmd_init(args: argparse.Namespace) -> int:
    from vector_sync.templates import kinds, template

    target = Path(args.config or FILE)
    known = kinds()
    if args.kind not in known:
        return _refused(args, f"unknown source kind {args.kind!r} (known: {', '.join(known)})")
    if target.exists() and not args.force:
        return _refused(args, f"{target} exists: not overwritten (--force replaces it)")
    target.write_text(template(args.kind), encoding="utf-8")
    steps = [f"edit {target}: the source's keys, and which fields the collection embeds",
             f"vector-sync plan --config {target}      # what a sync would do, writes nothing",
             f"vector-sync sync --config {target}      # snapshot, diff, embed, apply",
             f"vector-sync search <collection> \"...\" --config {target}"]
    if args.json:
        print_json({"written": str(target), "kind": args.kind, "next": steps})
    else:
        print(f"wrote {target} (a {args.kind} source feeding one collection). Next:")
        print("\n".join(f"  {n}. {step}" for n, step in enumerate(steps, 1)))
    return OK


def _refused(args: argparse.Namespace, message: str) -> int:
    import sys

    print(f"error: {message}", file=sys.stderr)
    if args.json:
        print_json({"error": message, "exit_code": BAD_CONFIG})
    return BAD_CONFIG
