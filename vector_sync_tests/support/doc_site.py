"""A real documentation website for the website source's tests: the example vault's notes
built into HTML by MkDocs (the static-site generator, readthedocs theme: navigation sidebar,
breadcrumbs, footer, sitemap) and served over loopback HTTP the way a static host does it:
ETag and Last-Modified on every page, 304 for a matching conditional GET, a 301 from a folder
without its trailing slash, and robots.txt.

A test changes what the site answers through `rules` (path -> status and headers, e.g. a
Location or a Retry-After) and `down` (503 for everything), and reads `requests` (what was
asked) to count the work a sync did.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

VAULT = Path(__file__).resolve().parents[2] / "examples" / "vault"
FOOTER = "Built with MkDocs using a theme provided by Read the Docs"
ROBOTS = "User-agent: *\nDisallow: /private/\n"


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


class DocSite:
    """The site's sources under `root/docs`, built into `root/site` and served from there."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.docs = root / "docs"
        self.built = root / "site"
        self.rules: dict[str, tuple[int, dict[str, str]]] = {}
        self.down = False
        self.requests: Counter[tuple[str, int]] = Counter()  # (path, status) -> times
        self.pages: list[str] = []  # what create() wrote ("cooking/sourdough-starter/")
        self._server: ThreadingHTTPServer | None = None

    # --- content ------------------------------------------------------------------------

    def create(self, notes: int | None = None) -> list[str]:
        """The vault's notes as pages (slugged paths, `Home` as the index); returns (and
        keeps in `pages`) the page paths ("cooking/sourdough-starter/")."""
        pages = self.pages
        for note in sorted(VAULT.rglob("*.md"))[:notes]:
            rel = note.relative_to(VAULT)
            if rel.parts[0] == "templates":
                continue
            target = Path(*map(slug, rel.parent.parts), slug(rel.stem) + ".md")
            if rel.as_posix() == "Home.md":
                target = Path("index.md")
            self.write(target.as_posix(), note.read_text(encoding="utf-8"))
            pages.append("" if target.name == "index.md" else target.with_suffix("").as_posix()
                         + "/")
        return pages

    def write(self, rel: str, text: str) -> None:
        path = self.docs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    def remove(self, rel: str) -> None:
        (self.docs / rel).unlink()

    def build(self, **settings: Any) -> None:
        """Run MkDocs (a real build: a page whose source did not change comes out the same
        bytes, so keeps its ETag), with more mkdocs.yml `settings` if given."""
        (self.root / "mkdocs.yml").write_text(yaml.safe_dump({
            "site_name": "Kitchen Notes", "site_url": self.url, "theme": "readthedocs",
            "docs_dir": "docs", "site_dir": "site", **settings}))
        subprocess.run([sys.executable, "-m", "mkdocs", "build", "--quiet", "--clean"],
                       cwd=self.root, check=True, capture_output=True)
        (self.built / "robots.txt").write_text(ROBOTS)

    # --- serving ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "serve() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    @contextmanager
    def serve(self) -> Iterator[DocSite]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                status, headers, body = site.answer(self.path, self.headers)
                site.requests[(urlsplit(self.path).path, status)] += 1
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()

    def answer(self, raw_path: str, request: Any) -> tuple[int, dict[str, str], bytes]:
        path = unquote(urlsplit(raw_path).path)
        if self.down:
            return 503, {"Retry-After": "120"}, b"maintenance"
        if path in self.rules:
            status, headers = self.rules[path]
            return status, headers, b""
        file = (self.built / path.lstrip("/")).resolve()
        if not file.is_relative_to(self.built.resolve()):
            return 404, {}, b""
        if file.is_dir():
            if not path.endswith("/"):
                return 301, {"Location": path + "/"}, b""
            file = file / "index.html"
        if not file.is_file():
            return 404, {"Content-Type": "text/html"}, b"<h1>Not found</h1>"
        body = file.read_bytes()
        mtime = int(file.stat().st_mtime)
        headers = {"Content-Type": _content_type(file),
                   "ETag": '"' + hashlib.sha1(body).hexdigest()[:16] + '"',
                   "Last-Modified": formatdate(mtime, usegmt=True)}
        if request.get("If-None-Match") == headers["ETag"] or (
                "If-None-Match" not in request and request.get("If-Modified-Since") and
                parsedate_to_datetime(request["If-Modified-Since"]).timestamp() >= mtime):
            return 304, headers, b""
        return 200, headers, body

    def fetched(self, status: int = 200) -> int:
        """Pages answered with `status` since the counters were last cleared."""
        return sum(n for (path, code), n in self.requests.items()
                   if code == status and path.endswith("/"))


def _content_type(file: Path) -> str:
    return {".html": "text/html; charset=utf-8", ".xml": "application/xml",
            ".gz": "application/gzip", ".txt": "text/plain", ".css": "text/css",
            ".js": "text/javascript"}.get(file.suffix, "application/octet-stream")
