"""What every command shares: exit codes, argument checks, JSON output."""

from __future__ import annotations

import argparse
import json
from typing import Any

from vector_sync.config import VectorSyncConfig

OK = 0
FAILED = 1  # documents failed, a source could not be synced, Qdrant is not consistent
BAD_CONFIG = 2  # the configuration or a command-line argument is wrong
NOT_VERIFIED = 3  # verify (or inspect) could not read what it compares: no verdict


class UsageError(Exception):
    """A command-line argument names something the config does not have."""


def sources_of(args: argparse.Namespace, config: VectorSyncConfig) -> list[str]:
    if args.source is None:
        return list(config.sources)
    if args.source not in config.sources:
        raise UsageError(f"unknown source {args.source!r} (configured: "
                         f"{', '.join(config.sources)})")
    return [args.source]


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False, default=str))
