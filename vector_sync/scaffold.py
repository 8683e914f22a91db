"""`dg scaffold defs vector_sync.VectorSyncComponent <name>`: a `defs.yaml` that loads as it
is, with a commented example of a source kind inline (`--kind`, default markdown; `--path`
its folder), or naming an existing `vector_sync.yaml` (`--config-file`)."""

from __future__ import annotations

import textwrap

import dagster as dg
from pydantic import BaseModel, Field

from vector_sync.templates import DEFAULT_KIND, template


class ScaffoldParams(BaseModel):
    kind: str = Field(DEFAULT_KIND, description="the source kind of the inline example")
    path: str | None = Field(None, description="the folder of a markdown source (relative "
                             "to the defs.yaml, or absolute)")
    config_file: str | None = Field(None, description="an existing vector_sync.yaml instead "
                                    "of an inline config")


HEADER = """\
# vector_sync: keep Qdrant collections in sync with a source. The attributes are the keys
# of vector_sync.yaml (docs/configuration.md), inline, or `config_file: <path>` instead.
type: {type_name}
attributes:
  # key_prefix: team_a      # asset keys team_a/qdrant_<collection>, jobs team_a_sync, ...
  # group_name: vector_sync # one asset group instead of one per collection
  # resource:               # per deployment, read where each step runs (dg.EnvVar)
  #   qdrant_url: {{env: QDRANT_URL}}
  #   qdrant_api_key: {{env: QDRANT_API_KEY}}
  #   ledger_url: {{env: LEDGER_URL}}
"""


class VectorSyncScaffolder(dg.Scaffolder[ScaffoldParams]):
    @classmethod
    def get_scaffold_params(cls) -> type[ScaffoldParams]:
        return ScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[ScaffoldParams]) -> None:
        params = request.params or ScaffoldParams()
        request.target_path.mkdir(parents=True, exist_ok=True)
        text = HEADER.format(type_name=request.type_name)
        if params.config_file:
            text += f"  config_file: {params.config_file}\n"
        else:
            # state beside the project, not inside its Python package
            state = f'"{{{{ context.project_root }}}}/.vector_sync/{request.target_path.name}"'
            config = "\n".join(
                f"  dir: {state}  # embedded Qdrant, the SQLite ledger, the stages' files"
                if line.startswith("  dir: .vector_sync") else line
                for line in template(params.kind).split("\n"))
            if params.path:
                config = config.replace("    path: ./vault", f"    path: {params.path}")
            text += textwrap.indent(config, "  ")
        (request.target_path / "defs.yaml").write_text(text, encoding="utf-8")
