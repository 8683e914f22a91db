"""What Qdrant really holds, against the source and the ledger: verify, repair, prune and
inspect."""
