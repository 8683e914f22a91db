"""The LangChain side of benchmarks/run.py, as a whole process: LangChain's `index()` with
an SQLRecordManager and cleanup="incremental" into qdrant-client local mode, embedding with
the same offline model (fastembed, loaded the way vector_sync loads it) and the same chunk
texts. Prints what index() reports and how many texts it embedded.

    python benchmarks/_langchain_index.py CONFIG DOCS_JSON WORK_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from langchain_classic.indexes import SQLRecordManager
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.indexing import index
from langchain_qdrant import QdrantVectorStore
from qdrant_client import QdrantClient, models

from vector_sync.config import load_config
from vector_sync.core.embedder import Embedder


class SameModel(Embeddings):
    def __init__(self, embedder: Embedder) -> None:
        self.embedder, self.embedded = embedder, 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.embedded += len(texts)
        return self.embedder.embed(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def main() -> None:
    config, docs_file, work = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    work.mkdir(exist_ok=True)
    embeddings = SameModel(Embedder(load_config(config).embedding))
    client = QdrantClient(path=str(work / "qdrant"))
    if not client.collection_exists("notes"):
        client.create_collection("notes", vectors_config=models.VectorParams(
            size=384, distance=models.Distance.COSINE))
    store = QdrantVectorStore(client, "notes", embeddings)
    records = SQLRecordManager("qdrant/notes", db_url=f"sqlite:///{work / 'records.sqlite'}")
    records.create_schema()
    documents = [Document(page_content=text, metadata={"source": doc_id})
                 for doc_id, texts in json.loads(docs_file.read_text()).items()
                 for text in texts]
    result = index(documents, records, store, cleanup="incremental", source_id_key="source")
    print(f"{dict(result)}, {embeddings.embedded} texts embedded")
    client.close()


if __name__ == "__main__":
    main()
