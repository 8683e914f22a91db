"""The `mongodb` source kind: the documents of one collection (optionally filtered), over the
wire, with an optional write-back of each document's sync status.

- settings.py: the keys (`MongoSettings`), the filter as a BSON query.
- source.py: `MongoSource`, which lists documents with a cheap version hint (the
  `updated_field` value, else a hash of the projected BSON), reads them and writes back.
- values.py: BSON values as JSON values, doc_ids and back, raw cursor batches.
- stream.py: the change stream: where a sync resumes (it then reads only what changed and
  skips the id listing) and what the sensor's look resumes from.
- watch.py: the watch sensor's cheap look (the change stream, or polling without one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vector_sync.core.source import ChangeCheck, Source
from vector_sync.sources.mongodb.settings import WRITE_BACK_FIELD, MongoSettings
from vector_sync.sources.mongodb.source import MongoSource
from vector_sync.sources.mongodb.watch import poll_changes

__all__ = ["WRITE_BACK_FIELD", "MongoConfig", "MongoSource"]


class MongoConfig(MongoSettings):
    """The documents of one MongoDB collection, optionally filtered."""

    def open(self, name: str, fields: Sequence[str] | None) -> Source:
        return MongoSource(name, self, fields)

    def probe(self, name: str) -> None:
        """The server answers and lets this user read the collection: one document's _id."""
        MongoSource(name, self).probe()

    def look(self, name: str, state: dict[str, Any] | None) -> ChangeCheck:
        """The collection's change stream, resumed from `state` (see watch.py)."""
        return poll_changes(name, self, state)
