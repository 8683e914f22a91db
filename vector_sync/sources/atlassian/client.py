"""HTTP for the Atlassian REST APIs (Confluence, Jira), Cloud and Data Center.

One `AtlassianClient` per source: Basic auth (an account's email and API token, Cloud) when a
username is given, else Bearer (a Data Center personal access token). Every request goes
through `get`, which:
- resolves the paging links the APIs hand back: Confluence Cloud's v1 `_links.next` is
  relative to the `/wiki` context ("/rest/api/content/search?cursor=..."), so a link that
  drops the context is joined back under it; links to another site are refused (they would
  carry the credentials away);
- waits out 429 and 503 answers for as long as their Retry-After says (capped), and every
  thread using the client waits with it, so parallel reads do not hammer a throttled site;
- retries 5xx answers and transport errors with exponential backoff and jitter, then raises
  SourceUnavailable;
- turns 401/403 into SourceUnavailable (refused credentials must never look like "no
  documents", which would delete everything) and other 4xx into AtlassianError with the
  server's own message (a bad CQL or JQL says what is wrong with it).
No message ever holds the token or the Authorization header (the base64 of user:token).
"""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from vector_sync.core.secrets import mask_url, scrub
from vector_sync.core.source import SourceUnavailable
from vector_sync.sources.http import retry_after_s

MAX_RETRY_AFTER_S = 60.0  # a longer Retry-After is waited this long, then asked again
BACKOFF_S = 0.5  # the first wait after a 5xx or a dropped connection; doubles each retry
MAX_BACKOFF_S = 8.0
CONNECT_RETRIES = 2  # nothing listening: a restart is short, a site down is not


class AtlassianError(Exception):
    """A request the server refused (400 for a bad CQL/JQL, 404, 410 ...): `status` and the
    server's own error text (secrets masked)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class AtlassianClient:
    """A thread-safe JSON client for one Atlassian site."""

    def __init__(self, base_url: str, username: str | None, token: SecretStr, *,
                 what: str, timeout_s: float = 30, max_retries: int = 6,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.what = what
        self._max_retries = max_retries
        secret = token.get_secret_value()
        if username:
            credentials = base64.b64encode(f"{username}:{secret}".encode()).decode()
            authorization = f"Basic {credentials}"
            self._secrets = [secret, credentials]
        else:
            authorization = f"Bearer {secret}"
            self._secrets = [secret]
        parts = urlsplit(self.base_url)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._context = parts.path.rstrip("/")  # "/wiki" on Confluence Cloud, often ""
        self._client = httpx.Client(
            timeout=timeout_s, follow_redirects=False, transport=transport,
            headers={"Authorization": authorization, "Accept": "application/json",
                     "User-Agent": "vector-sync"})
        self._lock = threading.Lock()
        self._not_before = 0.0  # monotonic time before which no request starts (Retry-After)

    def url(self, path_or_url: str) -> str:
        """The absolute URL of an API path, a paging link or an absolute URL."""
        if path_or_url.startswith(("http://", "https://")):
            parts = urlsplit(path_or_url)
            if f"{parts.scheme}://{parts.netloc}" != self._origin:
                raise AtlassianError(0, f"{self.what} linked to another site "
                                     f"({mask_url(path_or_url)}); not followed")
            return path_or_url
        if path_or_url.startswith("/"):
            # a server-relative link: Confluence v1 leaves out its /wiki context
            if self._context and not (path_or_url == self._context or path_or_url.startswith(
                    (self._context + "/", self._context + "?"))):
                return self._origin + self._context + path_or_url
            return self._origin + path_or_url
        return f"{self.base_url}/{path_or_url}"

    def get(self, path_or_url: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON object answered for a GET (see the module docstring for what fails how)."""
        url = self.url(path_or_url)
        attempt = 0
        while True:
            self._wait_turn()
            try:
                response = self._client.get(url, params=params)
            except httpx.HTTPError as error:
                limit = CONNECT_RETRIES if isinstance(error, httpx.ConnectError) \
                    else self._max_retries
                if attempt >= limit:
                    raise SourceUnavailable(
                        f"{self.what} at {mask_url(self.base_url)} cannot be reached: "
                        f"{self._clean(f'{type(error).__name__}: {error}')}") from None
                self._back_off(attempt)
                attempt += 1
                continue
            status = response.status_code
            if status == 200:
                try:
                    body = response.json()
                except ValueError:
                    raise SourceUnavailable(
                        f"{self.what} at {mask_url(self.base_url)} answered something that "
                        f"is not JSON for {self._show(url)}") from None
                if not isinstance(body, dict):
                    raise AtlassianError(status, f"{self.what} answered a JSON "
                                         f"{type(body).__name__}, not an object")
                return body
            wait = retry_after_s(response.headers.get("retry-after"))
            if status == 429 or status >= 500:
                if attempt >= self._max_retries:
                    raise SourceUnavailable(
                        f"{self.what} at {mask_url(self.base_url)} kept answering {status} "
                        f"{response.reason_phrase} ({attempt + 1} tries): "
                        f"{self._message(response)}".rstrip(": "))
                if wait is not None:
                    self._hold(min(wait, MAX_RETRY_AFTER_S))
                else:
                    self._back_off(attempt)
                attempt += 1
                continue
            if status in (401, 403):
                said = self._message(response)
                raise SourceUnavailable(
                    f"{self.what} at {mask_url(self.base_url)} refused the credentials "
                    f"({status}{': ' + said if said else ''}); check username and token")
            raise AtlassianError(status, self._message(response)
                                 or f"{status} {response.reason_phrase}")

    def close(self) -> None:
        self._client.close()

    # --- waiting ---------------------------------------------------------------------------

    def _wait_turn(self) -> None:
        with self._lock:
            delay = self._not_before - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _hold(self, seconds: float) -> None:
        """Every thread waits `seconds` from now (a Retry-After applies to the account)."""
        with self._lock:
            self._not_before = max(self._not_before, time.monotonic() + seconds)
        self._wait_turn()

    def _back_off(self, attempt: int) -> None:
        delay = min(BACKOFF_S * 2 ** attempt, MAX_BACKOFF_S)
        time.sleep(delay * random.uniform(0.5, 1.0))

    # --- messages --------------------------------------------------------------------------

    def _clean(self, text: str) -> str:
        return scrub(text, self._secrets)

    def _show(self, url: str) -> str:
        return self._clean(mask_url(url))

    def _message(self, response: httpx.Response) -> str:
        """The server's error text: Jira's errorMessages/errors, Confluence's message."""
        try:
            body = response.json()
        except ValueError:
            return self._clean(response.text.strip()[:300])
        parts: list[str] = []
        if isinstance(body, dict):
            messages = body.get("errorMessages")
            if isinstance(messages, list):
                parts += [str(m) for m in messages]
            errors = body.get("errors")
            if isinstance(errors, dict):
                parts += [f"{k}: {v}" for k, v in errors.items()]
            elif isinstance(errors, list):
                parts += [str(e.get("message", e)) if isinstance(e, dict) else str(e)
                          for e in errors]
            if isinstance(body.get("message"), str):
                parts.append(body["message"])
        else:
            parts.append(json.dumps(body)[:300])
        return self._clean("; ".join(p for p in parts if p))
