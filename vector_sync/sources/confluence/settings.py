"""The keys of a `kind: confluence` source, and what follows from them alone: the CQL of its
scope (the site, the credentials and the client are the Atlassian kinds' shared keys).
Everything in the package reads these; the face (`ConfluenceConfig`) adds what opens and
watches the source."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from vector_sync.sources.atlassian.settings import AtlassianSettings, without_order_by

_SPACE_KEY = re.compile(r"~?[A-Za-z0-9_\-:.]+")  # "~" + account id: a personal space


class ConfluenceSettings(AtlassianSettings):
    """The keys of a confluence source (`ConfluenceConfig`, the face, adds open() and
    look())."""

    product: ClassVar[str] = "Confluence"
    example_url: ClassVar[str] = "https://example.atlassian.net/wiki"

    kind: Literal["confluence"]
    spaces: list[str] = Field([], description="space keys whose pages are synced, e.g. "
                              "[ENG, DOCS]; empty: every space the account sees (then `cql` "
                              "is required)")
    cql: str | None = Field(None, min_length=1, description="a CQL condition ANDed with the "
                            "spaces, e.g. \"label = public\" (an ORDER BY is ignored)")

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
            parts.append(f"({without_order_by(self.cql)})")
        return " AND ".join(parts)

    def where(self) -> str:
        scope = f"spaces {', '.join(self.spaces)}" if self.spaces else "every space"
        return f"Confluence pages of {scope}" + (f" matching {self.cql}" if self.cql else "") \
            + f" at {self.site()}"
