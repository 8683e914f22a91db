"""Webhooks: an HTTP POST per event (`application/cloudevents+json`, structured mode),
signed with HMAC-SHA256 over `<timestamp>.<body>`:

    X-Vector-Sync-Timestamp: 1765112345
    X-Vector-Sync-Signature: sha256=<hex>

A receiver recomputes the signature with the shared secret and refuses old timestamps
(replays). Connection errors, 5xx, 408 and 429 are retried with backoff (0.25 s, doubling)
while the drain's time allows; another 4xx is final: recorded as a failed delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

import httpx

from vector_sync.core.events.cloudevents import Event, encode
from vector_sync.core.events.config import WebhookSinkConfig
from vector_sync.core.events.sinks.base import Sent
from vector_sync.core.secrets import mask_url, scrub, url_secrets

SIGNATURE = "X-Vector-Sync-Signature"
TIMESTAMP = "X-Vector-Sync-Timestamp"
_RETRIED = (408, 429)


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body,
                                hashlib.sha256).hexdigest()


class WebhookSink:
    def __init__(self, config: WebhookSinkConfig) -> None:
        self.name = config.sink_name
        self.config = config
        self._url = config.url.get_secret_value()
        self._secret = config.secret.get_secret_value().encode()
        self._client: httpx.Client | None = None

    def open(self, deadline: float) -> None:
        self._client = httpx.Client(timeout=self.config.timeout_s, follow_redirects=False)

    def _masked(self, text: str) -> str:
        return scrub(text.replace(self._url, mask_url(self._url)),
                     [*url_secrets(self._url), self._secret.decode()])

    def send(self, events: Sequence[Event], deadline: float) -> Sent:
        sent = Sent()
        for event in events:
            final, why = self._post(event, deadline)
            if final and why is None:
                sent.taken.append(event.seq)
            elif final:
                sent.refused.append((event.seq, why or ""))
            else:
                sent.stopped = why
                return sent
        return sent

    def _post(self, event: Event, deadline: float) -> tuple[bool, str | None]:
        """(final, why): (True, None) delivered, (True, why) refused for good, (False, why)
        to be retried by a later drain."""
        assert self._client is not None
        body = encode(event)
        why = "not attempted"
        for attempt in range(self.config.attempts):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            stamp = str(int(time.time()))
            try:
                response = self._client.post(self._url, content=body, timeout=remaining,
                                             headers={
                    "Content-Type": "application/cloudevents+json",
                    TIMESTAMP: stamp, SIGNATURE: signature(self._secret, stamp, body)})
            except httpx.HTTPError as error:
                why = self._masked(f"{type(error).__name__}: {error}")
            else:
                if response.is_success:
                    return True, None
                why = f"HTTP {response.status_code} from {mask_url(self._url)}"
                if 400 <= response.status_code < 500 and response.status_code not in _RETRIED:
                    return True, why
            pause = 0.25 * 2 ** attempt
            if time.monotonic() + pause >= deadline or attempt + 1 == self.config.attempts:
                break
            time.sleep(pause)
        return False, why

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
