"""The keys of a `kind: mongodb` source, and what follows from them alone: the configured
filter as a BSON query, and the field write-back writes to. Everything in the package reads
these; the face (`MongoConfig`) adds what opens and watches the source."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from bson import json_util
from bson.errors import BSONError
from pydantic import Field, SecretStr, model_validator

from vector_sync.core.secrets import mask_url
from vector_sync.core.settings import ConfigError
from vector_sync.core.source import SourceConfig

WRITE_BACK_FIELD = "syncMetadata"


class MongoSettings(SourceConfig):
    """The keys of a mongodb source (`MongoConfig`, the face, adds open() and look())."""

    kind: Literal["mongodb"]
    uri: SecretStr = Field(description="mongodb:// or mongodb+srv:// URI, from the environment")
    database: str = Field(min_length=1, description="the database")
    collection: str = Field(min_length=1, description="the collection")
    filter: dict[str, Any] = Field({}, description="a MongoDB query in Extended JSON: only "
                                   "matching documents")
    updated_field: str | None = Field(
        None, min_length=1, description="a field changed on every write: the cheap change hint")
    batch_size: int = Field(1000, gt=0, description="documents per cursor batch")
    max_document_bytes: int = Field(
        2_000_000, gt=0, description="larger documents (projected, as BSON) fail as too_large")
    server_selection_timeout_ms: int = Field(5000, gt=0, description="how long to look for "
                                             "the server before the source is unavailable")
    write_back: bool = Field(False, description="write each sync status into syncMetadata")
    full_listing_every_s: float = Field(
        3600.0, ge=0, description="with a change stream, a sync reads only what the stream "
        "names and lists every document id at least this often as a safety net (0: every sync)")

    @model_validator(mode="after")
    def _uri_and_filter_usable(self) -> MongoSettings:
        # the URI is a secret: say what is wrong without echoing it
        if not self.uri.get_secret_value().startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("uri must start with mongodb:// or mongodb+srv://")
        try:  # Extended JSON such as {"$date": "2024-01-01T00:00:00Z"} becomes BSON values
            json_util.loads(json.dumps(self.filter))
        except (TypeError, ValueError, BSONError) as error:
            raise ValueError(f"filter is not a MongoDB query in Extended JSON: {error}") from None
        return self

    def where(self) -> str:
        return (f"documents of {self.database}.{self.collection} at "
                f"{mask_url(self.uri.get_secret_value())}")


def filter_from(name: str, query: Mapping[str, Any]) -> dict[str, Any]:
    """The configured filter, with Extended JSON such as {"$date": ...} or {"$oid": ...}
    turned into BSON values."""
    try:
        converted = json_util.loads(json.dumps(query))
    except (TypeError, ValueError, BSONError) as error:
        raise ConfigError(f"sources.{name}.filter: {error}") from None
    return dict(converted)
