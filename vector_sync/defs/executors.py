"""What runs a run's steps: a deployment choice (`execution` in the config), not code."""

from __future__ import annotations

import dagster as dg

from vector_sync.core.settings import ConfigError, ExecutionConfig


def executor_for(execution: ExecutionConfig) -> dg.ExecutorDefinition:
    """In-process (the default: one process, the source's lock held for the whole run),
    multiprocess, or Celery workers (the `deploy` extra)."""
    if execution.executor == "multiprocess":
        return dg.multiprocess_executor.configured(
            {"max_concurrent": execution.max_concurrent})
    if execution.executor == "celery":
        try:
            from dagster_celery import celery_executor
        except ImportError:
            raise ConfigError("execution.executor: celery needs dagster-celery: install "
                              "vector_sync with its `deploy` extra") from None
        return celery_executor.configured({"broker": execution.broker.get_secret_value(),
                                           "backend": execution.backend})
    return dg.in_process_executor
