"""The LangChain side of benchmarks/run.py, as a whole process, and the chunking both sides
share.

    python benchmarks/_langchain_index.py CONFIG WORK_DIR

reads the vault the config names and cuts every note into the chunk texts vector_sync makes
(its own renderer and chunker: the same texts, so the same embedding work), then runs
LangChain's `index()` (SQLRecordManager, cleanup="incremental") into a Qdrant vector store
on a qdrant-client local-mode storage in WORK_DIR, embedding with the same offline model
(fastembed, loaded by vector_sync's Embedder). Prints one JSON object: what index() reports
(num_added, num_updated, num_skipped, num_deleted), the texts actually embedded and the
documents given to it. Run again on the edited vault, it indexes incrementally.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from _vault import COLLECTION, SOURCE


def vault_chunks(config_file: Path) -> dict[str, list[str]]:
    """doc_id -> the chunk texts vector_sync embeds for it (render + chunk_document with the
    collection's settings), for every note of the source, sorted by doc_id."""
    from vector_sync.config import load_config
    from vector_sync.core.documents import Document
    from vector_sync.core.spec import spec_for
    from vector_sync.core.text.chunking import chunk_document
    from vector_sync.core.text.embedder import Embedder
    from vector_sync.core.text.render import render

    config = load_config(config_file)
    spec = spec_for(config, COLLECTION)
    count_tokens = Embedder(config.embedding_for(COLLECTION)).count_tokens()
    source = config.open_source(SOURCE)
    found: dict[str, list[str]] = {}
    for document in source.read([entry.doc_id for entry in source.scan()]):
        if not isinstance(document, Document):
            raise RuntimeError(f"cannot read {document.doc_id}: {document.message}")
        preamble, body = render(document.fields, spec.embed)
        found[document.doc_id] = [chunk.text for chunk in chunk_document(
            preamble, body, count_tokens=count_tokens, max_tokens=spec.chunking.max_tokens,
            overlap_tokens=spec.chunking.overlap_tokens)]
    return dict(sorted(found.items()))


def langchain_missing() -> str | None:
    """Why the LangChain side cannot run here, or None."""
    missing = [name for name in ("langchain_core", "langchain_qdrant")
               if importlib.util.find_spec(name) is None]
    if not (importlib.util.find_spec("langchain_classic")
            or importlib.util.find_spec("langchain_community")):
        missing.append("langchain_classic")
    return f"not installed ({', '.join(missing)})" if missing else None


def index_counts(result: dict[str, Any]) -> str:
    return (f"added {result['num_added']}, updated {result['num_updated']}, deleted "
            f"{result['num_deleted']}, skipped {result['num_skipped']}")


def langchain_index(config_file: Path, work: Path) -> dict[str, Any]:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.indexing import index
    from langchain_qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient, models

    try:
        from langchain_classic.indexes import SQLRecordManager
    except ImportError:  # the older home of the record manager
        from langchain_community.indexes import SQLRecordManager

    from vector_sync.config import load_config
    from vector_sync.core.text.embedder import Embedder

    class SameModel(Embeddings):
        """The model vector_sync uses, through the Embeddings interface."""

        def __init__(self, embedder: Embedder) -> None:
            self.embedder, self.embedded = embedder, 0

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            self.embedded += len(texts)
            return self.embedder.embed(texts).tolist()

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]

    work.mkdir(exist_ok=True)
    config = load_config(config_file)
    embeddings = SameModel(Embedder(config.embedding_for(COLLECTION)))
    client = QdrantClient(path=str(work / "qdrant"))
    if not client.collection_exists(COLLECTION):
        client.create_collection(COLLECTION, vectors_config=models.VectorParams(
            size=embeddings.embedder.dimension, distance=models.Distance.COSINE))
    store = QdrantVectorStore(client, COLLECTION, embeddings)
    embeddings.embedded = 0  # the store embedded one probe text to check the vector size
    records = SQLRecordManager(f"qdrant/{COLLECTION}",
                               db_url=f"sqlite:///{work / 'records.sqlite'}")
    records.create_schema()
    documents = [Document(page_content=text, metadata={"source": doc_id})
                 for doc_id, texts in vault_chunks(config_file).items() for text in texts]
    result = index(documents, records, store, cleanup="incremental", source_id_key="source")
    client.close()
    return {**result, "embedded": embeddings.embedded, "documents": len(documents)}


if __name__ == "__main__":
    print(json.dumps(langchain_index(Path(sys.argv[1]), Path(sys.argv[2]))))
