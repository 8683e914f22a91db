"""Dagster-free sync engine: every unit here is usable and testable on its own."""
