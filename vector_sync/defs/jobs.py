"""Names of the jobs the UI, the CLI and the sensors share."""

SYNC_JOB = "sync"  # the sync assets of one source partition, with the mass-delete guard
VERIFY_JOB = "verify"  # the consistency checks of one source partition
