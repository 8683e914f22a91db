"""Secrets in URLs (a MongoDB URI, a Git remote, a ledger URL): masked for people, scrubbed
from messages. One helper for every source kind, so none prints a password its own way."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^@/]*)@")
_SECRET_PARAM = re.compile(r"((?:password|secret|token|key)[^=&]*=)[^&]*", re.IGNORECASE)


def mask_url(url: str) -> str:
    """`url` with the password of its user info (and secret-looking query parameters)
    replaced by ***: `mongodb://app:***@host/db`. A URL without user info or secret
    parameters is unchanged."""

    def userinfo(match: re.Match[str]) -> str:
        # a lone user name may itself be the secret (a token): it is never shown bare
        user = match.group(2).split(":", 1)[0]
        return f"{match.group(1)}{user}:***@" if user else f"{match.group(1)}***@"

    return _SECRET_PARAM.sub(r"\1***", _USERINFO.sub(userinfo, url, count=1))


def url_secrets(url: str) -> list[str]:
    """The password of `url`, raw and percent-decoded, to scrub from any message (a client
    library's error may quote the URL or the password)."""
    match = _USERINFO.match(url)
    if not match or ":" not in match.group(2):
        return []
    password = match.group(2).split(":", 1)[1]
    return [p for p in {password, unquote(password)} if len(p) >= 3]


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
