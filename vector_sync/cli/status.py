"""`status` (the ledger's view, and whether each source can be reached) and `search`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from vector_sync.cli.common import FAILED, OK, UsageError, chosen, print_json, sources_of
from vector_sync.config import EmbeddingConfig, VectorSyncConfig

if TYPE_CHECKING:
    from vector_sync.core.storage import Storage


def cmd_status(args: argparse.Namespace, config: VectorSyncConfig) -> int:
    from vector_sync.core.ledger import STATUSES
    from vector_sync.core.pipeline.plan import read_only_ledger
    from vector_sync.core.storage import measure

    sources = sources_of(args, config)
    with read_only_ledger(config) as ledger:
        counts = {k: v for k, v in ledger.counts().items()  # not other generations' rows
                  if k[0] in sources and k[1] in config.collections}
        failed = [row for s in sources for row in ledger.failed(s, limit=args.limit)]
        storage = measure(config, ledger) if getattr(args, "storage", False) else None
    for source in sources:  # a source never synced shows its collections at 0, not nothing
        for collection in config.sources[source].collections:
            counts.setdefault((source, collection), dict.fromkeys(STATUSES, 0))
    errors = {source: _unreachable(config, source) for source in sources}
    failed_rows = [{
        "source": r.source, "collection": r.collection, "doc_id": r.doc_id,
        "error_code": r.error_code, "error": r.last_error, "attempts": r.attempts,
        "last_attempt_at": r.last_attempt_at, "next_attempt_at": r.next_attempt_at,
        "gave_up": r.next_attempt_at is None,
    } for r in failed]
    code = FAILED if any(errors.values()) else OK
    if args.json:
        print_json({
            "sources": {s: {"collections": {c: dict(n) for (src, c), n in sorted(counts.items())
                                            if src == s},
                            "error": errors[s]} for s in sources},
            "failed": failed_rows,
            **({"storage": storage.as_dict()} if storage is not None else {}),
        })
        return code
    for source, error in errors.items():
        if error:  # first: the counts below are the ledger's memory, not the source's state
            print(f"{source:<14}unavailable: {error}")
    print(f"{'source':<14}{'collection':<18}{'synced':>8}{'pending':>9}{'stale':>7}{'failed':>8}")
    for (source, collection), by_status in sorted(counts.items()):
        print(f"{source:<14}{collection:<18}" + "".join(
            f"{by_status.get(s, 0):>{w}}" for s, w in
            (("synced", 8), ("pending", 9), ("stale", 7), ("failed", 8))))
    if storage is not None:
        _print_storage(storage)
    if failed_rows:
        print("\nfailed documents:")
        for row in failed_rows:
            print(f"  {row['source']}/{row['doc_id']} [{row['collection']}] "
                  f"{row['error_code']}: {row['error']} (attempts: {row['attempts']}, "
                  + ("retries exhausted: fixed by an edit, `sync --full` or the "
                     "resync_documents job)" if row["gave_up"] else
                     f"next retry {row['next_attempt_at']:%Y-%m-%d %H:%M:%S} UTC)"))
    return code


def _print_storage(storage: Storage) -> None:
    print("\nstorage on disk:")
    parts = ", ".join(f"{name} {_size(n)}" for name, n in storage.state_parts.items() if n)
    for name, size, detail in (("ledger", storage.ledger, storage.ledger.how),
                               ("state", storage.state, parts or "empty"),
                               ("qdrant", storage.qdrant, storage.qdrant.how)):
        shown = "n/a" if size.bytes is None else _size(size.bytes)
        print(f"  {name:<8}{shown:>10}  {detail}")
    ratio = storage.ratio
    print("  (ledger + state) / qdrant: " + ("n/a" if ratio is None else f"{ratio:.0%}")
          + " (tracking state is meant to stay under about 25%)")


def _size(n: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _unreachable(config: VectorSyncConfig, source: str) -> str | None:
    """Why the source cannot be read now (a vault's folder, a connection, a branch head), or
    None when it can."""
    from vector_sync.core.source import SourceUnavailable

    try:
        config.sources[source].probe(source)
    except SourceUnavailable as error:
        return str(error)
    return None


def _building(config: VectorSyncConfig, collection: str) -> tuple[str, EmbeddingConfig]:
    """The generation a migration is building for `collection`, and its own model."""
    from vector_sync.core.generations.registry import Registry
    from vector_sync.core.generations.spec import with_spec

    with Registry.open(config.state, read_only=True) as registry:
        building = registry.building(collection)
    if building is None:
        raise UsageError(f"collection {collection!r} has no generation being built "
                         "(`vector-sync migrate status`)")
    return building.physical, with_spec(config, collection, building.spec).embedding_for(
        collection)


def cmd_search(args: argparse.Namespace, config: VectorSyncConfig) -> int:
    from vector_sync.core.store import QdrantUnavailable, open_store
    from vector_sync.core.text.embedder import Embedder

    chosen("collection", args.collection, config.collections)
    name, embedding = args.collection, config.embedding_for(args.collection)
    if getattr(args, "generation", "serving") == "building":
        name, embedding = _building(config, args.collection)
    vector = Embedder(embedding).embed([args.text])[0]
    with open_store(config.qdrant, config.state) as store:
        try:
            points = store.search(name, vector.tolist(), args.limit) \
                if store.exists(name) else []
        except QdrantUnavailable:
            raise
        except Exception as error:  # noqa: BLE001 - e.g. embedded storage that refuses us
            raise QdrantUnavailable(f"Qdrant search failed: {type(error).__name__}: {error}") \
                from None
    hits: list[dict[str, Any]] = [
        {"score": round(float(p.score), 4), **{k: (p.payload or {}).get(k) for k in
                                               ("source", "doc_id", "chunk_index", "text")}}
        for p in points]
    if args.json:
        print_json(hits)
    elif not hits:
        print(f"no results in {args.collection!r} (has it been synced?)")
    for hit in hits if not args.json else []:
        snippet = " ".join(str(hit["text"]).split())[:160]
        print(f"{hit['score']:.3f}  {hit['source']}/{hit['doc_id']}#{hit['chunk_index']}\n"
              f"       {snippet}")
    return OK
