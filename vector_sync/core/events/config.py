"""The `events:` section of `vector_sync.yaml`: where sync events go (several sinks at once,
each drained on its own), how long delivered events are kept, how long a sink may take.

Secrets (a webhook's signing secret, URLs that may carry a password) are `SecretStr`: never
shown in a repr, a log line or a Dagster metadata value; messages show URLs masked.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from vector_sync.core.stats import duration_s

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_\-]*$"


class _Sink(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(None, pattern=_NAME, description="the sink's name in delivery "
                             "records, metrics and `events redeliver --sink`; default: its kind")
    timeout_s: float = Field(5, gt=0, description="how long one drain may spend on this sink "
                             "(connecting, sending, waiting for acknowledgements); what is left "
                             "waits in the outbox for the next drain")

    @model_validator(mode="after")
    def _scheme(self) -> _Sink:
        url = getattr(self, "url", None)
        kind = getattr(self, "kind")  # noqa: B009 - set by each kind
        if kind == "nats" and url is not None and not re.match(
                r"^(nats|tls)://", url.get_secret_value()):
            raise ValueError("a nats sink's url starts with nats:// or tls://")
        return self

    @property
    def sink_name(self) -> str:
        return self.name or str(getattr(self, "kind"))  # noqa: B009 - set by each kind


class NatsSinkConfig(_Sink):
    """NATS JetStream: the stream is created if missing, capturing `<subject_prefix>.>`; an
    event counts as delivered once JetStream acknowledged it."""

    kind: Literal["nats"] = Field(description="the sink kind")
    url: SecretStr = Field(SecretStr("nats://127.0.0.1:4222"), description="the server, "
                           "`nats://` or `tls://` (`nats://user:password@host:4222` is masked "
                           "in messages)")
    stream: str = Field("VECTOR_SYNC", pattern=r"^[A-Za-z0-9_\-]+$",
                        description="the JetStream stream")
    subject_prefix: str = Field("vector_sync", pattern=r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$",
                                description="events are published on `<subject_prefix>.<type "
                                "without its vector_sync. prefix>`, e.g. "
                                "`vector_sync.document.synced`")


class RedisSinkConfig(_Sink):
    """Redis Streams: `XADD <stream_key> MAXLEN ~ <maxlen> * ...`."""

    kind: Literal["redis"] = Field(description="the sink kind")
    url: SecretStr = Field(SecretStr("redis://127.0.0.1:6379/0"), description="the server "
                           "(a password in it is masked in messages)")
    stream_key: str = Field("vector_sync:events", min_length=1, description="the stream's key")
    maxlen: int = Field(100_000, gt=0, description="entries the stream keeps, about (`MAXLEN ~`)")


class WebhookSinkConfig(_Sink):
    """HTTP POST of each event (`application/cloudevents+json`), signed: header
    `X-Vector-Sync-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` with
    `X-Vector-Sync-Timestamp` (Unix seconds). Retried with backoff; a 4xx other than 408 and
    429 is not retried: the event is recorded as a failed delivery."""

    kind: Literal["webhook"] = Field(description="the sink kind")
    url: SecretStr = Field(description="where to POST (masked in messages)")
    secret: SecretStr = Field(description="the HMAC key, from the environment "
                              "(`${WEBHOOK_SECRET}`)")
    attempts: int = Field(4, ge=1, description="tries per event within one drain, backing off "
                          "from 0.25 s (doubling) while `timeout_s` allows")


class FileSinkConfig(_Sink):
    """A JSON Lines file, one event per line, appended and flushed to disk."""

    kind: Literal["file"] = Field(description="the sink kind")
    path: Path = Field(description="the file (relative: to the config file's folder)")


SinkConfig = Annotated[
    Union[NatsSinkConfig, RedisSinkConfig, WebhookSinkConfig, FileSinkConfig],  # noqa: UP007
    Field(discriminator="kind"),
]


class EventsConfig(BaseModel):
    """Sync events (CloudEvents 1.0, JSON): written to an outbox in the ledger in the same
    transaction as the change they describe, then delivered to every sink at least once, in
    order per subject. No sinks: no events are recorded at all."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sinks: list[SinkConfig] = Field([], description="where events go; `kind` is one of nats, "
                                    "redis, webhook, file")
    retention: str = Field("7d", description="how long events delivered to every sink stay "
                           "in the outbox (`events tail`, `events redeliver`): 30m, 24h, 7d")
    drain_interval_s: int = Field(30, ge=1, description="how often the `events_drain` sensor "
                                  "delivers what a sync left in the outbox (a sink was down)")

    @model_validator(mode="after")
    def _valid(self) -> EventsConfig:
        duration_s(self.retention)
        names = [sink.sink_name for sink in self.sinks]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ValueError(f"sink name(s) {', '.join(doubled)} used twice: give each sink "
                             "of one kind a `name`")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.sinks)

    @property
    def retention_s(self) -> float:
        return duration_s(self.retention)

    def sink(self, name: str) -> SinkConfig | None:
        return next((s for s in self.sinks if s.sink_name == name), None)
