"""Where events go: each sink takes events in outbox order and says which it took.

A sink is opened for one drain (`open`, within the drain's deadline), sent batches of
events (`send`), and closed. `send` returns a `Sent`: how many of the batch, from its start,
the sink took (so order is kept: what follows a refused event waits), the events it refused
for good, and why it stopped early, if it did (those events are retried by a later drain).
"""
