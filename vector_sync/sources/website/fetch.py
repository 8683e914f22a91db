"""HTTP for the website source: one polite client per crawl.

Every request goes through `Fetcher.get`, which keeps the rate limit (shared by all crawl
threads, raised to a site's robots.txt Crawl-delay), waits out a 429's Retry-After when it is
short, stops reading a body past `max_bytes` and turns every transport problem into an error
code a user can read (`timeout`, `connection_failed`, `tls_error`, `too_large`, `rate_limited`,
`http_503`...). Redirects are never followed here: the crawl decides what a redirect means.
"""

from __future__ import annotations

import ssl
import threading
import time
import urllib.robotparser
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from vector_sync.sources.http import retry_after_s

RETRIES_429 = 3


@dataclass
class Fetched:
    """One answer: a status (0 when no HTTP answer came) and, for 200, the body."""

    url: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None  # the error code, when the fetch failed
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.error is not None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class Fetcher:
    """A rate-limited, size-capped HTTP client for one site crawl (thread-safe)."""

    def __init__(self, user_agent: str, rate_limit_per_s: float, timeout_s: float,
                 max_bytes: int, max_retry_after_s: float) -> None:
        self.user_agent = user_agent
        self._interval = 1.0 / rate_limit_per_s
        self._max_bytes = max_bytes
        self._max_retry_after_s = max_retry_after_s
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False,
                                    headers={"User-Agent": user_agent})
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self._robots: dict[str, urllib.robotparser.RobotFileParser | Fetched] = {}

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def get(self, url: str, headers: dict[str, str] | None = None) -> Fetched:
        for _ in range(RETRIES_429 + 1):
            answer = self._get_once(url, headers or {})
            if answer.status != 429:
                return answer
            wait = retry_after_s(answer.header("retry-after"))
            if wait is None or wait > self._max_retry_after_s:
                break
            time.sleep(wait)
        return Fetched(url, 429, error="rate_limited", message="the server answered 429 Too "
                       "Many Requests" + (f" (Retry-After {answer.header('retry-after')})"
                                          if answer.header("retry-after") else ""))

    def _get_once(self, url: str, headers: dict[str, str]) -> Fetched:
        self._wait_turn()
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                answer = Fetched(url, response.status_code, {k.lower(): v for k, v in
                                                            response.headers.items()})
                if response.status_code == 200:
                    body = bytearray()
                    for piece in response.iter_bytes():
                        body += piece
                        if len(body) > self._max_bytes:
                            return Fetched(url, 200, answer.headers, error="too_large",
                                           message=f"the page is larger than {self._max_bytes}"
                                           " bytes (max_page_bytes)")
                    answer.body = bytes(body)
                elif response.status_code >= 500:
                    answer.error = f"http_{response.status_code}"
                    answer.message = f"the server answered {response.status_code} " \
                        f"{response.reason_phrase}".rstrip()
                return answer
        except httpx.TimeoutException:
            return Fetched(url, 0, error="timeout", message="no answer within timeout_s")
        except httpx.HTTPError as error:
            tls = isinstance(error.__context__, ssl.SSLError) or "SSL" in str(error)
            return Fetched(url, 0, error="tls_error" if tls else "connection_failed",
                           message=f"{type(error).__name__}: {error}")

    def _wait_turn(self) -> None:
        """Requests start at most once per interval, whichever thread sends them."""
        with self._lock:
            moment = time.monotonic()
            start = max(moment, self._next_slot)
            self._next_slot = start + self._interval
        if start > moment:
            time.sleep(start - moment)

    # --- robots.txt ----------------------------------------------------------------------

    def robots(self, url: str) -> urllib.robotparser.RobotFileParser | Fetched:
        """The robots.txt rules of `url`'s site (fetched once per crawl), or the failed
        answer when the site could not say (a 5xx or no answer: RFC 9309 then means
        "crawl nothing", so the crawl treats the site as unavailable)."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._lock:
            known = self._robots.get(origin)
        if known is not None:
            return known
        answer = self.get(f"{origin}/robots.txt")
        rules: urllib.robotparser.RobotFileParser | Fetched
        if answer.failed:
            rules = answer
        else:
            rules = urllib.robotparser.RobotFileParser()
            # a 4xx or a redirect: no rules, everything may be crawled
            rules.parse(answer.body.decode("utf-8", "replace").splitlines()
                        if answer.status == 200 else [])
            delay = rules.crawl_delay(self.user_agent)
            if delay:
                with self._lock:
                    self._interval = max(self._interval, float(delay))
        with self._lock:
            self._robots[origin] = rules
        return rules
