"""This repository as a Dagster (`dg`) project: its code location loads the `defs/` folder,
where vector_sync is one component (`defs/example_vault/defs.yaml`, the example vault) and
a team's own assets sit beside it (`dg scaffold defs dagster.asset ...`)."""
