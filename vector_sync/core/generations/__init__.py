"""Blue-green generations of a collection: after a model or chunker change the configured
name keeps serving the generation it was built with, while a new one is built beside it
from the same sources; a gated, atomic pointer change switches searchers over, and the old
generation is kept for rollback.

- `spec.py`: what a generation is built with, its fingerprint and physical name;
- `registry.py`: the generations in the ledger (and the row swap at a switch);
- `serving.py`: the config every door uses, with the serving generation's settings;
- `engine.py`: start, fill (batched, resumable), catch up, switch, rollback, cleanup;
- `gate.py`: the canary queries compared between the two generations;
- `report.py`: what `migrate status` and `migrate plan` print;
- `settings.py`: the `migration:` section of the config.
"""
