"""vector_sync: keep Qdrant collections exactly in sync with where documents live."""
