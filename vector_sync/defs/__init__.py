"""Thin Dagster layer over `vector_sync.core`: assets, resources, jobs."""
