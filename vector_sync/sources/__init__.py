"""The source kinds: one package each, one line each here.

A kind's package (`vector_sync.sources.<kind>`) has its face in `__init__.py`: the settings
(a `SourceConfig` subclass, see vector_sync.core.source) and the source they open, which is
what this registry and users import. Its helpers sit beside the face and never import it.
`files.py` is what the file-based kinds (markdown, git) share. Entries are imported on first
use, so a config that does not use MongoDB never imports pymongo.
"""

from vector_sync.core.source import Registry

REGISTRY = Registry({
    "markdown": "vector_sync.sources.markdown:MarkdownConfig",
    "mongodb": "vector_sync.sources.mongodb:MongoConfig",
    "git": "vector_sync.sources.git:GitConfig",
    "website": "vector_sync.sources.website:WebsiteConfig",
    "surrealdb": "vector_sync.sources.surrealdb:SurrealConfig",
    "confluence": "vector_sync.sources.confluence:ConfluenceConfig",
    "jira": "vector_sync.sources.jira:JiraConfig",
})
