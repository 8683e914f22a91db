"""The `migration:` section of the config (blue-green generations, docs/migrations.md).

Kept beside the generations code; the config module imports it (and this module imports
nothing of the config's, so there is no circle)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from vector_sync.core.stats import duration_s


class MigrationConfig(BaseModel):
    """Blue-green rebuilds after a model or chunker change (docs/migrations.md): the
    configured name keeps serving the previous generation until a gated switch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    auto: bool = Field(False, description="true: a sync that finds the model or chunker "
                       "changed starts the migration itself; false: it keeps serving (and "
                       "updating) the old generation and says `vector-sync migrate start`")
    keep_old: str = Field("24h", pattern=r"^\d+(\.\d+)?[smhd]$", description="how long the "
                          "previous generation is kept for `migrate rollback` after a switch "
                          "(`90s`, `30m`, `24h`, `7d`); `migrate cleanup` drops it after")
    canaries: list[str] = Field([], description="query texts for the quality gate; empty: "
                                "sampled from the serving generation's own chunk texts")
    canary_count: int = Field(20, ge=1, le=1000, description="canaries sampled when "
                              "`canaries` is empty")
    top_k: int = Field(10, ge=1, le=100, description="documents compared per canary")
    min_overlap: float = Field(0.5, ge=0, le=1, description="the gate's threshold: mean share "
                               "of the old generation's top-k documents the new one also "
                               "returns")
    min_recall: float = Field(0.8, ge=0, le=1, description="the gate's threshold: share of "
                              "sampled canaries whose own document the new generation returns "
                              "in its top-k")

    batch_documents: int = Field(500, ge=1, description="documents per checkpointed batch "
                                 "of a migration (each batch holds its source's lock only "
                                 "while it runs, so syncs go on in between)")

    @property
    def keep_old_s(self) -> float:
        return duration_s(self.keep_old)
