"""The base of the Atlassian stand-ins (Confluence, Jira) the tests run against: NOT the real
services, which cannot be reached from here, but a small threaded HTTP server on loopback that
answers the subset of their REST APIs a source calls, with bodies shaped as the public API
references document them. A stand-in for one product registers its routes on top of this.

What the base does for every stand-in:
- authentication as Atlassian Cloud checks it: Basic (email and API token) or Bearer (a Data
  Center personal access token); anything else is a 401 with the body Atlassian answers;
- faults a test asks for: `fail_every(n)` (every n-th request answers 429 with Retry-After),
  `down()` / `up()` (the port closes: nothing listens, as when the site is down);
- a request log (`requests`: method, path, query) so a test can assert what a sync fetched.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# Atlassian Cloud's answer to a request whose Basic credentials it does not accept
CLOUD_UNAUTHORIZED = (
    "Basic authentication with passwords is deprecated.  For more information, see: "
    "https://developer.atlassian.com/cloud/confluence/deprecation-notice-basic-auth/\n")


@dataclass(frozen=True)
class Request:
    """One request as a handler sees it: `query` maps each parameter to its last value,
    `params` to all of them (`?spaceKey=A&spaceKey=B`)."""

    method: str
    path: str
    query: dict[str, str]
    params: dict[str, list[str]]
    match: re.Match[str]
    body: Any = None


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # a JSON value, or a str sent as text/plain
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Reply]


@dataclass(frozen=True)
class Logged:
    method: str
    path: str
    query: dict[str, str]
    status: int
    at: float = 0.0  # time.monotonic() when the request arrived


class AtlassianStandIn:
    """A loopback stand-in for one Atlassian product. Start with `with standin:` (or start()),
    then point a source at `url` (the site plus `context`, e.g. "/wiki" for Confluence)."""

    def __init__(self, *, username: str = "sync-bot@example.com",
                 token: str = "stand-in-api-token-0123456789", context: str = "") -> None:
        self.username = username
        self.token = token
        self.context = context.rstrip("/")
        self.requests: list[Logged] = []
        self.unauthorized = Reply(401, CLOUD_UNAUTHORIZED,
                                  {"WWW-Authenticate": 'Basic realm="protected-area"'})
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._lock = threading.Lock()
        self._fail_every = 0
        self._fail_status = 429
        self._retry_after: float | None = 1
        self._served = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()  # open keep-alive connections
        self.port = 0

    # --- set up ----------------------------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Answer `method` requests whose path (below `context`) fully matches `pattern`."""
        self._routes.append((method, re.compile(pattern), handler))

    @property
    def site(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.site + self.context

    def start(self) -> AtlassianStandIn:
        standin = self

        class Handle(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # headers and body leave in two writes: without this, Nagle's algorithm holds
                # the body until the client's delayed ACK (40 ms a request)
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with standin._lock:
                    standin._connections.add(self.connection)

            def finish(self) -> None:
                with standin._lock:
                    standin._connections.discard(self.connection)
                super().finish()

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                standin._handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                standin._handle(self, "POST")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handle)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)  # polls for stop() every 50 ms
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> AtlassianStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- faults ----------------------------------------------------------------------------

    def fail_every(self, n: int, status: int = 429, retry_after: float | None = 1) -> None:
        """Every n-th request (from now on) answers `status` with Retry-After; 0 stops it."""
        with self._lock:
            self._fail_every, self._fail_status, self._retry_after = n, status, retry_after
            self._served = 0

    def down(self) -> None:
        """The site goes away: its port closes (new connections are refused) and the open
        ones are cut."""
        self.stop()
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):  # already closed
                    connection.shutdown(socket.SHUT_RDWR)

    def up(self) -> None:
        """The site is back, on the same port."""
        self.start()

    def revoke(self) -> None:
        """The API token the tests configured is revoked: it gets 401s from now on."""
        self.token = "revoked-" + self.token

    # --- serving ---------------------------------------------------------------------------

    def listed(self, path_pattern: str) -> list[Logged]:
        """The logged requests whose path matches `path_pattern` (re.search)."""
        return [r for r in self.requests if re.search(path_pattern, r.path)]

    def _authorized(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        if scheme == "Bearer":
            return value == self.token
        if scheme == "Basic":
            try:
                user, _, secret = base64.b64decode(value).decode().partition(":")
            except ValueError:
                return False
            return user == self.username and secret == self.token
        return False

    def _answer(self, method: str, path: str, params: dict[str, list[str]], headers: Any,
                body: Any) -> Reply:
        with self._lock:
            self._served += 1
            if self._fail_every and self._served % self._fail_every == 0:
                extra = {} if self._retry_after is None else {
                    "Retry-After": f"{self._retry_after:g}"}
                return Reply(self._fail_status, {"message": "Rate limit exceeded"}, extra)
        if not self._authorized(headers.get("Authorization")):
            return self.unauthorized
        if self.context:
            if not path.startswith(self.context + "/"):
                return Reply(404, {"statusCode": 404, "message": f"No route for {path}"})
            path = path[len(self.context):]
        for route_method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if route_method == method and match:
                query = {k: v[-1] for k, v in params.items()}
                return handler(Request(method, path, query, params, match, body))
        return Reply(404, {"statusCode": 404, "message": f"No route for {method} {path}"})

    def _handle(self, http: BaseHTTPRequestHandler, method: str) -> None:
        arrived = time.monotonic()
        parts = urlsplit(http.path)
        params = parse_qs(parts.query, keep_blank_values=True)
        length = int(http.headers.get("Content-Length") or 0)
        raw = http.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        try:
            reply = self._answer(method, parts.path, params, http.headers, body)
        except Exception as error:  # a stand-in bug shows as a 500 the test sees
            reply = Reply(500, {"message": f"stand-in error: {type(error).__name__}: {error}"})
        with self._lock:
            self.requests.append(Logged(method, parts.path, {k: v[-1] for k, v in
                                                             params.items()}, reply.status,
                                        arrived))
        if isinstance(reply.body, str):
            data, content_type = reply.body.encode(), "text/plain;charset=UTF-8"
        else:
            data, content_type = json.dumps(reply.body).encode(), "application/json"
        http.send_response(reply.status)
        http.send_header("Content-Type", content_type)
        http.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers.items():
            http.send_header(name, value)
        http.end_headers()
        http.wfile.write(data)
