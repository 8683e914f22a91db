"""The keys of a `kind: confluence` source, and what follows from them alone: the CQL of its
scope and the HTTP client. Everything in the package reads these; the face
(`ConfluenceConfig`) adds what opens and watches the source."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from vector_sync.core.secrets import mask_url
from vector_sync.core.source import SourceConfig
from vector_sync.sources.atlassian.client import AtlassianClient

_SPACE_KEY = re.compile(r"~?[A-Za-z0-9_\-:.]+")  # "~" + account id: a personal space
# a CQL string literal, or an ORDER BY (which cannot stand inside the parentheses the
# condition is ANDed in; the listing's order is the source's own)
_CQL_PART = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|\border\s+by\b", re.IGNORECASE)


class ConfluenceSettings(SourceConfig):
    """The keys of a confluence source (`ConfluenceConfig`, the face, adds open() and
    look())."""

    kind: Literal["confluence"]
    url: str = Field(description="the site's Confluence address: Cloud "
                     "https://<site>.atlassian.net/wiki, Data Center its base URL")
    spaces: list[str] = Field([], description="space keys whose pages are synced, e.g. "
                              "[ENG, DOCS]; empty: every space the account sees (then `cql` "
                              "is required)")
    cql: str | None = Field(None, min_length=1, description="a CQL condition ANDed with the "
                            "spaces, e.g. \"label = public\" (an ORDER BY is ignored)")
    username: str | None = Field(None, min_length=1, description="Cloud: the account's email "
                                 "(Basic auth with `token`); omit for a Data Center personal "
                                 "access token (Bearer)")
    token: SecretStr = Field(description="Cloud: an API token; Data Center: a personal access "
                             "token; from the environment (\"${ATLASSIAN_TOKEN}\")")
    full_listing_every_s: int = Field(
        900, ge=0, description="the watch sensor lists every page (deletions, moves, "
        "restrictions) at most this often; between listings it asks only for the latest "
        "modification")
    timeout_s: float = Field(30.0, gt=0, description="how long one request may take")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("url must be an http(s) address, e.g. "
                             "https://example.atlassian.net/wiki")
        if parts.query or parts.fragment or "@" in parts.netloc:
            raise ValueError("url must be the site's address alone (no query, no user info: "
                             "the credentials are `username` and `token`)")
        return url.rstrip("/")

    @field_validator("spaces")
    @classmethod
    def _space_keys(cls, spaces: list[str]) -> list[str]:
        bad = [key for key in spaces if not _SPACE_KEY.fullmatch(key)]
        if bad:
            raise ValueError(f"not space keys: {', '.join(map(repr, bad))} (a key is what "
                             "Confluence shows in the space's address, e.g. ENG)")
        return spaces

    @model_validator(mode="after")
    def _some_scope(self) -> ConfluenceSettings:
        if not self.spaces and not self.cql:
            raise ValueError("a confluence source needs spaces, cql or both")
        return self

    def scope_cql(self) -> str:
        """The CQL of every page in scope: pages of the spaces, and the user's condition."""
        parts = ["type = page"]
        if self.spaces:
            parts.append("space in (" + ", ".join(f'"{key}"' for key in self.spaces) + ")")
        if self.cql:
            parts.append(f"({_without_order_by(self.cql)})")
        return " AND ".join(parts)

    def where(self) -> str:
        scope = f"spaces {', '.join(self.spaces)}" if self.spaces else "every space"
        return f"Confluence pages of {scope}" + (f" matching {self.cql}" if self.cql else "") \
            + f" at {mask_url(self.url)}"

    def client(self) -> AtlassianClient:
        return AtlassianClient(self.url, self.username, self.token, what="Confluence",
                               timeout_s=self.timeout_s)


def _without_order_by(cql: str) -> str:
    """`cql` up to its ORDER BY clause, if it has one outside quotes."""
    for match in _CQL_PART.finditer(cql):
        if match.group(0)[0] not in "\"'":
            return cql[:match.start()].rstrip()
    return cql
