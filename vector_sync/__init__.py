"""vector_sync: keep Qdrant collections exactly in sync with where documents live.

`vector_sync.VectorSyncComponent` is the Dagster component (a `defs.yaml` in any Dagster
project); it is imported on first use, so that importing vector_sync (the `vector-sync`
command, `--version`) does not import Dagster.
"""

from __future__ import annotations

from typing import Any

from vector_sync.__about__ import __version__

__all__ = ["VectorSyncComponent", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "VectorSyncComponent":
        from vector_sync.component import VectorSyncComponent

        return VectorSyncComponent
    raise AttributeError(f"module 'vector_sync' has no attribute {name!r}")


def __dir__() -> list[str]:
    # `dg list components` finds the component by listing this module
    return sorted({*globals(), "VectorSyncComponent"})
