"""The config every door uses: each configured collection with the settings of the
generation that serves it.

When the config asks for another model, chunker or embedded fields than the serving
generation was built with, a sync must not rebuild in place (searchers would get a mix of
old and new vectors): it keeps updating the serving generation with the settings it was
built with, and says that a migration is pending. Only the migration builds the new one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from vector_sync.core.generations.registry import Registry
from vector_sync.core.generations.spec import GenerationSpec, configured_spec, with_spec
from vector_sync.core.settings import ConfigError, VectorSyncConfig
from vector_sync.core.text.chunking import CHUNKER_VERSION

log = logging.getLogger(__name__)


class SwitchUnfinished(ConfigError):
    """A switch died between the pointer change and the ledger's swap: the name points at
    the new generation while the ledger still describes the old one. Nothing may write the
    collection until `migrate switch` finishes it."""


@dataclass
class ServingView:
    config: VectorSyncConfig  # with every collection's serving settings
    pending: dict[str, list[str]] = field(default_factory=dict)  # collection -> what changed

    def message(self, collection: str) -> str:
        return (f"collection {collection}: the config changed "
                f"({'; '.join(self.pending[collection])}); syncs keep serving and updating "
                "the current generation with its own settings until a migration switches: "
                "run `vector-sync migrate start`")


def adopted_spec(wanted: GenerationSpec, versions: dict[str, int]) -> GenerationSpec:
    """The settings a collection made before generations was built with: the model and
    chunker its ledger rows record (`vector_version`, the most common one), the config's
    for the rest (embed fields, and the model folder when the model is the same). So a model
    or chunker changed in the same step as the upgrade is a pending migration too, never a
    rebuild in place. Without rows (nothing synced yet): the config's."""
    if not versions:
        return wanted
    version = max(versions, key=lambda v: versions[v])
    model, _, chunker = version.rpartition("|")
    algorithm, _, sizes = chunker.partition("/")
    max_tokens, _, overlap = sizes.partition("/")
    if algorithm != CHUNKER_VERSION or not (max_tokens.isdigit() and overlap.isdigit()):
        return wanted  # an earlier chunker: its chunks cannot be made again anyway
    return replace(wanted, model=model, max_tokens=int(max_tokens),
                   overlap_tokens=int(overlap),
                   model_path=wanted.model_path if model == wanted.model else None)


def serving_view(config: VectorSyncConfig, register: bool = False) -> ServingView:
    """`register`: a collection without a generation yet gets its first one recorded, as
    it is now (the collection under the configured name, adopted in place, or still to be
    made): from then on a changed config no longer rebuilds it in place."""
    view = ServingView(config)
    with Registry.open(config.state, read_only=not register) as registry:
        for collection in config.collections:
            wanted = configured_spec(config, collection)
            if register and registry.in_state(collection, "switching"):
                raise SwitchUnfinished(
                    f"collection {collection}: a switch of generations was interrupted; run "
                    f"`vector-sync migrate switch --collection {collection}` to finish it "
                    "before syncing")
            serving = registry.serving(collection)
            if serving is None:
                if register:
                    found = adopted_spec(wanted, registry.vector_versions(collection))
                    registry.add(collection, collection, found, "serving")
                    log.info("collection %s: recorded as its first generation (%s)",
                             collection, found.model)
                    serving = registry.serving(collection)
                if serving is None:
                    continue
            if serving.fingerprint != wanted.fingerprint:
                view.pending[collection] = serving.spec.differences(wanted)
                view.config = with_spec(view.config, collection, serving.spec)
    for collection in view.pending:
        log.warning("%s", view.message(collection))
    return view


def serving_config(config: VectorSyncConfig, register: bool = False) -> VectorSyncConfig:
    return serving_view(config, register).config
