"""The source kinds: one module each, one line each here.

A kind's module holds its settings (a `SourceConfig` subclass, see vector_sync.core.source),
its source and its optional capabilities. Entries are imported on first use, so a config
that does not use MongoDB never imports pymongo.
"""

from vector_sync.core.source import Registry

REGISTRY = Registry({
    "markdown": "vector_sync.sources.markdown:MarkdownConfig",
    "mongodb": "vector_sync.sources.mongodb:MongoConfig",
    "git": "vector_sync.sources.git:GitConfig",
    "website": "vector_sync.sources.website:WebsiteConfig",
    "surrealdb": "vector_sync.sources.surrealdb:SurrealConfig",
})
