"""From a document's fields to vectors: rendering, chunking, token counting, the embedding
model and its files."""
