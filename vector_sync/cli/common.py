"""What every command shares: exit codes, argument checks, JSON output."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from typing import Any

from vector_sync.config import VectorSyncConfig

OK = 0
FAILED = 1  # documents failed, a source could not be synced, Qdrant is not consistent
BAD_CONFIG = 2  # the configuration or a command-line argument is wrong
NOT_VERIFIED = 3  # verify (or inspect) could not read what it compares: no verdict


class UsageError(Exception):
    """A command-line argument names something the config does not have."""


def chosen(what: str, name: str | None, configured: Iterable[str]) -> list[str]:
    """The one `what` (source, collection) named on the command line, or all configured
    ones when none is; a name the config does not have is a usage error."""
    known = list(configured)
    if name is None:
        return known
    if name not in known:
        raise UsageError(f"unknown {what} {name!r} (configured: {', '.join(known)})")
    return [name]


def sources_of(args: argparse.Namespace, config: VectorSyncConfig) -> list[str]:
    return chosen("source", args.source, config.sources)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False, default=str))
