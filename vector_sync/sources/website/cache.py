"""The crawl cache: what the last crawl of a site saw (each page's URL, validators, version
and links; each sitemap's digest), so the next crawl asks with `If-None-Match` and
`If-Modified-Since` and the watch sensor knows what to ask about.

One JSON file per source, by default `<state.dir>/website/<source>.json` (see
`WebsiteConfig.resolved`). It is replaced whole: a crash while writing leaves the previous
crawl's cache, never half a file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vector_sync.core.atomic import write_atomically


def read_cache(path: Path | None) -> dict[str, Any]:
    """The cache kept at `path`; empty before the first crawl (every page is then fetched)."""
    if path is None or not path.exists():
        return {}
    return dict(json.loads(path.read_text()))


def write_cache(path: Path, cache: dict[str, Any]) -> None:
    write_atomically(path, json.dumps(cache))
