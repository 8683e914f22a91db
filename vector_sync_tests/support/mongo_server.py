"""A real MongoDB-wire server for tests: SecantusDB, in this process, on a free port."""

from __future__ import annotations

import gc
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from secantus import SecantusDBServer


@contextmanager
def running_server(storage: Path, **options: Any) -> Iterator[SecantusDBServer]:
    server = SecantusDBServer(storage_path=str(storage), **options)
    server.start()
    try:
        yield server
    finally:
        gc.collect()  # closes the clients of sources no longer used
        with suppress(OSError):  # wakes the accept() that close() alone leaves blocked for 2 s
            server._socket.shutdown(socket.SHUT_RDWR)
        server.stop()
