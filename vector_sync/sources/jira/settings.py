"""The keys of a `kind: jira` source, and what follows from them alone: which Jira API the
source speaks (Cloud or Data Center) and the JQL scope without its ORDER BY (the site, the
credentials and the client are the Atlassian kinds' shared keys). Everything in the package
reads these; the face (`JiraConfig`) adds what opens and watches the source."""

from __future__ import annotations

from typing import ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from vector_sync.sources.atlassian.settings import AtlassianSettings, without_order_by

Edition = Literal["cloud", "data_center"]


class JiraSettings(AtlassianSettings):
    """The keys of a jira source (`JiraConfig`, the face, adds open() and look())."""

    product: ClassVar[str] = "Jira"
    example_url: ClassVar[str] = "https://example.atlassian.net"

    kind: Literal["jira"]
    jql: str = Field(min_length=1, description="the issues to sync, e.g. \"project in (ENG, "
                     "OPS)\"; an ORDER BY is ignored (the source orders its own listing)")
    edition: Edition | None = Field(
        None, description="`cloud` (REST v3: search/jql, ADF bodies) or `data_center` (REST "
        "v2: search with startAt, wiki markup); default: cloud when `username` is set or the "
        "site is *.atlassian.net, else data_center")
    page_size: int = Field(100, gt=0, le=1000, description="issues asked for per request "
                           "when reading bodies (Jira may answer fewer)")

    @field_validator("jql")
    @classmethod
    def _jql(cls, jql: str) -> str:
        if not without_order_by(jql).strip():
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
        return without_order_by(self.jql)

    def where(self) -> str:
        return f"Jira issues matching {self.scope!r} at {self.site()}"

