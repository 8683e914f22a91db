"""When a document that failed is tried again: exponential backoff with jitter."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from vector_sync.core.settings import RetryConfig


def retry_at(now: datetime, attempts: int, policy: RetryConfig) -> datetime | None:
    """When a row that failed `attempts` times is due again: exponential backoff with
    jitter, or None once it has failed max_retries times (it stays failed)."""
    if attempts >= policy.max_retries:
        return None
    delay = min(policy.base_backoff_s * policy.multiplier ** max(attempts - 1, 0),
                policy.max_backoff_s)
    return now + timedelta(seconds=delay * random.uniform(1 - policy.jitter, 1 + policy.jitter))
