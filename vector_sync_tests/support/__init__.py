"""Helpers the tests share (fixtures stay in conftest.py): a project driven through the CLI,
sync processes stopped at fault points, the local services, and stand-ins (a documentation
site, Git repositories, a MongoDB wire-protocol server, a TCP proxy, hostile inputs) in
modules of their own."""

from vector_sync_tests.support.processes import (
    is_stopped,
    start_sync,
    sync_stopped_at,
    wait_until_stopped,
)
from vector_sync_tests.support.project import Project, counts, listed, long_note, write_note
from vector_sync_tests.support.services import PG_SERVER, service_missing, tmpfs

__all__ = ["PG_SERVER", "Project", "counts", "is_stopped", "listed", "long_note", "service_missing",
           "start_sync", "sync_stopped_at", "tmpfs", "wait_until_stopped", "write_note"]
