"""The keys both Atlassian kinds take (the site, the credentials, request limits, how often
the watch lists everything) and the query clause both strip: an ORDER BY cannot stand inside
the parentheses a user's CQL or JQL condition is ANDed in, and each source orders its own
listing."""

from __future__ import annotations

import re
from typing import ClassVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from vector_sync.core.secrets import mask_url
from vector_sync.core.source import SourceConfig
from vector_sync.sources.atlassian.client import AtlassianClient

# a string literal (skipped: "order by" may be searched for), or the ORDER BY keyword
_QUERY_PART = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|\border\s+by\b", re.IGNORECASE)


class AtlassianSettings(SourceConfig):
    """The keys of a confluence or jira source that reach the HTTP client."""

    product: ClassVar[str]  # "Confluence" / "Jira": named in messages
    example_url: ClassVar[str]

    url: str = Field(description="the site's address (Cloud: https://<site>.atlassian.net, "
                     "with /wiki for Confluence; Data Center: its base URL)")
    username: str | None = Field(None, min_length=1, description="Cloud: the account's email "
                                 "(Basic auth with `token`); omit it for a Data Center "
                                 "personal access token (Bearer)")
    token: SecretStr = Field(description="Cloud: an API token; Data Center: a personal access "
                             "token; from the environment (\"${ATLASSIAN_TOKEN}\")")
    timeout_s: float = Field(30.0, gt=0, description="how long one request may take")
    max_retries: int = Field(6, ge=0, description="retries of a request that failed with "
                             "429, 5xx or a dropped connection, before the source is "
                             "unavailable")
    full_listing_every_s: float = Field(
        900.0, ge=0, description="the watch sensor lists everything in scope (deletions, "
        "moves, restrictions) at most this often; between listings it asks only for the "
        "latest modification")

    @field_validator("url")
    @classmethod
    def _site(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be an http(s) address, e.g. {cls.example_url}")
        if parts.username or parts.password:
            raise ValueError("url must not carry credentials: use username and token")
        if parts.query or parts.fragment:
            raise ValueError("url must be the site's address, without ? or #")
        return url.rstrip("/")

    @field_validator("token")
    @classmethod
    def _token(cls, token: SecretStr) -> SecretStr:
        if not token.get_secret_value().strip():
            raise ValueError("token is empty (is its environment variable set?)")
        return token

    def site(self) -> str:
        """The site's address with any password masked, for messages."""
        return mask_url(self.url)

    def client(self) -> AtlassianClient:
        return AtlassianClient(self.url, self.username, self.token, what=self.product,
                               timeout_s=self.timeout_s, max_retries=self.max_retries)


def without_order_by(query: str) -> str:
    """A CQL or JQL query up to its ORDER BY clause, if it has one outside quotes."""
    for match in _QUERY_PART.finditer(query):
        if match.group(0)[0] not in "\"'":
            return query[:match.start()].rstrip()
    return query
