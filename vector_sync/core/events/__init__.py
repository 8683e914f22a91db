"""Sync events for the systems around the index, and the figures a monitoring system scrapes.

- config.py: the `events:` section (sinks, retention, timeouts)
- cloudevents.py: the event types, their deterministic ids, the CloudEvents 1.0 envelope
- outbox.py: the outbox in the ledger (written in the ledger change's own transaction),
  per-sink delivery records, pruning
- sinks/: NATS JetStream, Redis Streams, signed webhooks, a JSON Lines file
- publisher.py: drains the outbox into every sink, each within its timeout
- metrics.py: the Prometheus collector (ledger and outbox only)

Nothing is imported here: the config models import config.py at start-up.
"""
