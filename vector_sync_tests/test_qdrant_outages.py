"""A Qdrant server that misbehaves on the wire: a loopback stand-in that accepts connections
and then stalls, or cuts each response half-way (no Qdrant server can run here, and these
faults are the point). The sync fails within `qdrant.timeout_s` with the reason on every
document, and once Qdrant answers again the next sync converges without embedding anything
a second time."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest

from vector_sync.cli import main
from vector_sync_tests.support import Project, counts

HALF_A_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 4096\r\n\r\n{\"result\": {\"collections\": [")


@contextmanager
def misbehaving_server(behaviour: str) -> Iterator[str]:
    """A URL whose server accepts, reads the request, then stalls or cuts the response."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop, held = threading.Event(), []

    def serve() -> None:
        while not stop.is_set():
            with suppress(OSError):
                connection, _ = listener.accept()
                held.append(connection)
                with suppress(OSError):
                    connection.recv(65536)
                    if behaviour == "cut":
                        connection.sendall(HALF_A_RESPONSE)
                        connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()
        for connection in held:
            connection.close()


@pytest.mark.parametrize("behaviour", ["stall", "cut"])
def test_a_stalling_or_cut_off_qdrant_fails_every_document_with_its_reason_then_converges(
        project: Project, capsys, behaviour: str) -> None:
    for i in range(3):
        project.note(f"n{i}.md", f"# Note {i}\n\nNote {i} is about topic {i}.\n")
    project.config["retry"] = {"step_retries": 0}
    with misbehaving_server(behaviour) as url:
        project.config["qdrant"] = {"url": url, "timeout_s": 1}
        project.save()
        code, report = project.cli("sync", capsys=capsys)
        assert code == 1 and counts(report)["failed"] == 3
        embedded = counts(report)["chunks_embedded"]
        code, status = project.cli("status", capsys=capsys)
        assert {r["error_code"] for r in status["failed"]} == {"qdrant_error"}
        reason = {"stall": "timed out", "cut": "closed connection"}[behaviour]
        assert all("Qdrant" in r["error"] and reason in r["error"] for r in status["failed"])
        capsys.readouterr()
        code = main(["verify", "--config", str(project.config_file)])
        out = capsys.readouterr().out
        assert code == 3 and out.startswith("could not verify: notes: Qdrant could not be read:")
        assert reason in out
        code, verified = project.cli("verify", capsys=capsys)  # --json: the reason as JSON
        assert code == 3 and not verified["verified"] and reason in verified["errors"]["notes"]

    project.config["qdrant"] = {"url": None}  # Qdrant answers again
    project.save()
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0 and counts(report)["added"] == 3
    assert counts(report)["chunks_embedded"] == 0 and embedded == 3  # made once, kept
    assert sorted(project.points()) == ["n0.md", "n1.md", "n2.md"]
