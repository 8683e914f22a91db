"""The code location of `dg dev` / `dg check defs` ([tool.dg] in pyproject.toml): every
definition under `defs/`, components declared in `defs.yaml` files and Python modules alike.
"""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
