"""The keys of a `kind: jira` source, and what follows from them alone: which Jira API the
source speaks (Cloud or Data Center), the JQL scope without its ORDER BY, the site address
of an issue and the HTTP client. Everything in the package reads these; the face
(`JiraConfig`) adds what opens and watches the source."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from vector_sync.core.secrets import mask_url
from vector_sync.core.source import SourceConfig
from vector_sync.sources.atlassian.client import AtlassianClient

Edition = Literal["cloud", "data_center"]
_ORDER_BY = re.compile(r"order\s+by\b", re.IGNORECASE)


class JiraSettings(SourceConfig):
    """The keys of a jira source (`JiraConfig`, the face, adds open() and look())."""

    kind: Literal["jira"]
    url: str = Field(description="the Jira site: https://example.atlassian.net (Cloud), or "
                     "the base URL of a Data Center instance")
    jql: str = Field(min_length=1, description="the issues to sync, e.g. \"project in (ENG, "
                     "OPS)\"; an ORDER BY is ignored (the source orders its own listing)")
    username: str | None = Field(None, min_length=1, description="Cloud: the account's email, "
                                 "with an API token in `token` (Basic auth); omit it for a "
                                 "Data Center personal access token (Bearer)")
    token: SecretStr = Field(description="the API token or personal access token, from the "
                             "environment")
    edition: Edition | None = Field(
        None, description="`cloud` (REST v3: search/jql, ADF bodies) or `data_center` (REST "
        "v2: search with startAt, wiki markup); default: cloud when `username` is set or the "
        "site is *.atlassian.net, else data_center")
    page_size: int = Field(100, gt=0, le=1000, description="issues asked for per request "
                           "when reading bodies (Jira may answer fewer)")
    timeout_s: float = Field(30.0, gt=0, description="how long one request may take")
    max_retries: int = Field(6, ge=0, description="retries of a request that failed with "
                             "429, 5xx or a dropped connection, before the source is "
                             "unavailable")
    full_listing_every_s: float = Field(900.0, ge=0, description="the watch sensor lists every "
                                   "issue id at most this often, to see deletions and issues "
                                   "that left the JQL (its cheap look cannot)")

    @field_validator("url")
    @classmethod
    def _site(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an http:// or https:// address of the Jira site")
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

    @field_validator("jql")
    @classmethod
    def _jql(cls, jql: str) -> str:
        if not scope_of(jql).strip():
            raise ValueError("jql selects nothing but an ORDER BY: name the issues to sync, "
                             "e.g. \"project = ENG\"")
        return jql

    @property
    def api(self) -> Edition:
        if self.edition is not None:
            return self.edition
        host = urlsplit(self.url).hostname or ""
        return "cloud" if self.username or host.endswith(".atlassian.net") else "data_center"

    @property
    def scope(self) -> str:
        """The JQL as a condition that can be combined with others (no ORDER BY)."""
        return scope_of(self.jql).strip()

    def where(self) -> str:
        return f"Jira issues matching {self.scope!r} at {mask_url(self.url)}"

    def client(self) -> AtlassianClient:
        return AtlassianClient(self.url, self.username, self.token, what="Jira",
                               timeout_s=self.timeout_s, max_retries=self.max_retries)


def scope_of(jql: str) -> str:
    """`jql` without a trailing ORDER BY clause (outside quotes), so it can be wrapped in
    parentheses and ANDed with the source's own conditions."""
    quote: str | None = None
    escaped = False
    cut = len(jql)
    for i, char in enumerate(jql):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif quote:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif (i == 0 or not jql[i - 1].isalnum()) and _ORDER_BY.match(jql, i):
            cut = i
            break
    return jql[:cut]
