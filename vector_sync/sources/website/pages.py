"""What the website source knows about URLs and pages, without any network.

- `normalize_url`: the doc id of a page. Scheme and host lower-cased, default ports, fragments
  and tracking parameters dropped, query parameters sorted, `index.html` and a trailing slash
  removed: `HTTPS://Docs.Example.com:443/guide/index.html?utm_source=x#top` and
  `https://docs.example.com/guide/` are one page, `https://docs.example.com/guide`.
- `Scope`: which URLs the crawl may fetch (allowed prefixes, exclude globs).
- `parse_sitemap`: page URLs and lastmods of a sitemap or sitemap index (gzip or plain).
- `page_links` / `parse_page`: a page's links, and its fields: the main content as Markdown
  (trafilatura: no navigation, footer or cookie banner, headings kept for the chunker,
  without the backslash escapes a reader never sees), its title, description, language,
  breadcrumbs and last modification.
"""

from __future__ import annotations

import fnmatch
import gzip
import re
import zlib
from collections.abc import Sequence
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import lxml.etree
import lxml.html
import trafilatura

TRACKING_PARAMS = {"gclid", "fbclid", "msclkid", "mc_cid", "mc_eid", "_ga", "_gl", "ref_src"}
DEFAULT_PORTS = {"http": 80, "https": 443}
INDEX_FILES = ("index.html", "index.htm")
# links to these are files, not pages: never fetched
ASSET_SUFFIXES = (".css", ".js", ".json", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp",
                  ".ico", ".pdf", ".zip", ".gz", ".tar", ".mp4", ".mp3", ".woff", ".woff2",
                  ".ttf", ".xml", ".txt")
MAX_SITEMAP_BYTES = 50 * 1024 * 1024  # the sitemap protocol's own limit, uncompressed


def normalize_url(url: str, base: str | None = None) -> str | None:
    """The canonical form of `url` (resolved against `base`): a doc id. None for what is
    not an http(s) page URL (mailto:, javascript:...)."""
    return _normalized(url, base, as_id=True)


def fetch_url(url: str, base: str | None = None) -> str | None:
    """`url` as it is fetched: normalized like a doc id, but the path kept as written (a
    static server answers `/guide` with a redirect to `/guide/`, which would cost a request
    per page and crawl)."""
    return _normalized(url, base, as_id=False)


def _normalized(url: str, base: str | None, as_id: bool) -> str | None:
    url = url.strip()
    if base is not None:
        url = urljoin(base, url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if port and port != DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    path = parts.path or "/"
    if as_id:
        for index in INDEX_FILES:
            if path.endswith("/" + index):
                path = path[: -len(index)]
        if len(path) > 1:
            path = path.rstrip("/")
    query = urlencode(sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                             if not k.lower().startswith("utm_")
                             and k.lower() not in TRACKING_PARAMS))
    return urlunsplit((scheme, host, path, query, ""))


def default_prefix(url: str) -> str:
    """What a start URL allows by default: its folder (`/docs/guide/` for
    `/docs/guide/intro`), so a crawl stays within the documentation it was pointed at."""
    parts = urlsplit(fetch_url(url) or url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path[: parts.path.rfind("/") + 1]
                       or "/", "", ""))


class Scope:
    """Which page URLs belong to the source: under an allowed prefix, not excluded, not a
    file such as an image or a stylesheet."""

    def __init__(self, allow: Sequence[str], exclude: Sequence[str]) -> None:
        # a prefix ends in "/" or not as written: "/docs/v2" also allows "/docs/v2.1/"
        self._allow = [_normalized_prefix(p) for p in allow]
        self._exclude = list(exclude)

    def __contains__(self, url: str) -> bool:
        path = urlsplit(url).path.lower()
        if path.endswith(ASSET_SUFFIXES):
            return False
        if not any(url.startswith(p) or url == p.rstrip("/") for p in self._allow):
            return False
        return not any(fnmatch.fnmatchcase(url, pattern) for pattern in self._exclude)


def _normalized_prefix(prefix: str) -> str:
    parts = urlsplit(prefix.strip())
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", "", ""))


def parse_sitemap(data: bytes, url: str) -> tuple[list[tuple[str, str | None]], list[str]]:
    """(page URL, lastmod) pairs and nested sitemap URLs of a sitemap or sitemap index.
    Gzip is recognised by its magic bytes. Raises ValueError for what is not a sitemap.
    The XML parser resolves no entities and loads nothing from the network."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(f"{url} is not valid gzip: {error}") from None
    if len(data) > MAX_SITEMAP_BYTES:
        raise ValueError(f"{url} is larger than {MAX_SITEMAP_BYTES} bytes")
    parser = lxml.etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = lxml.etree.fromstring(data, parser)
    except lxml.etree.XMLSyntaxError as error:
        raise ValueError(f"{url} is not a sitemap: {error}") from None
    pages: list[tuple[str, str | None]] = []
    nested: list[str] = []
    kind = lxml.etree.QName(root).localname
    if kind not in ("urlset", "sitemapindex"):
        raise ValueError(f"{url} is not a sitemap (its root element is <{kind}>)")
    for entry in root:
        if not isinstance(entry.tag, str):
            continue
        values = {lxml.etree.QName(child).localname: (child.text or "").strip()
                  for child in entry if isinstance(child.tag, str)}
        if not values.get("loc"):
            continue
        if kind == "sitemapindex":
            nested.append(values["loc"])
        else:
            pages.append((values["loc"], values.get("lastmod") or None))
    return pages, nested


# --- pages ----------------------------------------------------------------------------------


def html_tree(body: bytes) -> Any:
    """The page parsed by lxml (the encoding from its meta tag or UTF-8); ValueError if it is
    not HTML at all."""
    try:
        return lxml.html.document_fromstring(body)
    except (lxml.etree.ParserError, ValueError) as error:
        raise ValueError(f"the page cannot be parsed as HTML: {error}") from None


def page_links(tree: Any, url: str) -> tuple[str | None, dict[str, str]]:
    """The page's canonical URL (`<link rel=canonical>`, when it names one) and its links,
    doc id -> URL to fetch, in page order. A `<base href>` and `rel=nofollow` are
    honoured."""
    base = url
    for href in tree.xpath("//base/@href")[:1]:
        base = urljoin(url, href)
    canonical = None
    for href in tree.xpath("//link[@rel='canonical']/@href")[:1]:
        canonical = normalize_url(href, base)
    links: dict[str, str] = {}
    for anchor in tree.iter("a"):
        href = anchor.get("href")
        if not href or "nofollow" in (anchor.get("rel") or "").lower():
            continue
        doc_id, address = normalize_url(href, base), fetch_url(href, base)
        if doc_id and address:
            links.setdefault(doc_id, address)
    return canonical, links


def _text(nodes: Sequence[Any]) -> str:
    for node in nodes:
        text = " ".join((node if isinstance(node, str) else node.text_content()).split())
        if text:
            return text
    return ""


def _breadcrumbs(tree: Any) -> list[str]:
    """The trail of a breadcrumb navigation (aria-label or class "breadcrumb"), if any."""
    trails = tree.xpath("//*[contains(translate(@aria-label, 'B', 'b'), 'breadcrumb') or "
                        "contains(@class, 'breadcrumb')]")
    for trail in trails:
        items = [" ".join(node.text_content().split()) for node in trail.xpath(".//li|.//a")
                 if not node.xpath(".//li")]
        items = [item for item in dict.fromkeys(items) if item]
        if items:
            return items
    return []


def http_date(value: str | None) -> str | None:
    """A Last-Modified header as an ISO 8601 UTC time."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).astimezone(UTC).isoformat()
    except (TypeError, ValueError):
        return None


# page chrome that is never content, removed before trafilatura looks for the main text
_CHROME = ("//nav|//header|//footer|//aside|//*[@role='navigation' or @role='banner' or "
           "@role='contentinfo']|//*[contains(translate(@aria-label, 'B', 'b'), 'breadcrumb')]")
_TITLE_SEPARATORS = (" | ", " - ", " — ", " – ", " · ")


def _page_title(tree: Any) -> str:
    """The h1, else og:title, else <title> without the site name after its last separator
    ("Install - Acme Docs" is the page "Install")."""
    title = _text(tree.xpath("//h1")) or _text(tree.xpath("//meta[@property='og:title']/@content"))
    if title:
        return title
    title = _text(tree.xpath("//title"))
    cut = max(title.rfind(separator) for separator in _TITLE_SEPARATORS)
    return title[:cut].strip() if cut > 0 else title


def parse_page(body: bytes, url: str, last_modified: str | None = None) -> dict[str, Any]:
    """The fields of a page. Raises ValueError when it has no main content to sync."""
    tree = html_tree(body)
    fields = {
        "title": _page_title(tree) or url,
        "url": url,
        "description": _text(tree.xpath("//meta[@name='description']/@content")) or _text(
            tree.xpath("//meta[@property='og:description']/@content")) or None,
        "breadcrumbs": _breadcrumbs(tree),
        "language": (tree.get("lang") or "").strip() or None,
        "modified_at": http_date(last_modified) or _text(tree.xpath(
            "//meta[@property='article:modified_time']/@content")) or None,
    }
    for chrome in tree.xpath(_CHROME):
        chrome.drop_tree()
    markdown = trafilatura.extract(tree, url=url, output_format="markdown", include_tables=True,
                                   include_comments=False, include_links=False,
                                   include_images=False, deduplicate=False)
    if not markdown or not markdown.strip():
        raise ValueError("the page has no main content to extract")
    return {**fields, "body": without_escapes(markdown.strip())}


# trafilatura escapes what Markdown would read as markup, in prose only: inline characters
# (a backslash run before one doubled, plus one) and the marker starting a paragraph
_INLINE_ESCAPE = re.compile(r"(\\+)([*_`~\[\]<])|(`+)(?:.*?[^`])?\3(?!`)")
_BLOCK_ESCAPE = re.compile(r"^( {0,3}(?:\d{1,9})?)\\([>+\-.)])(?=[ \t]|$)")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def without_escapes(markdown: str) -> str:
    """The page's Markdown with trafilatura's backslash escapes taken out, so the text is what
    a reader of the page sees (`refresh_minutes`, not `refresh\\_minutes`). Code blocks and
    code spans keep every backslash (it is literal there), and so does a `\\#` starting a
    line, which would otherwise read as a heading and change the chunks' heading paths."""
    lines, fence = [], ""
    for line in markdown.split("\n"):
        opening = _FENCE.match(line)
        if fence:
            fence = "" if opening and opening.group(1).startswith(fence) else fence
        elif opening:
            fence = opening.group(1)
        else:
            line = _INLINE_ESCAPE.sub(_unescaped, _BLOCK_ESCAPE.sub(r"\1\2", line))
        lines.append(line)
    return "\n".join(lines)


def _unescaped(match: re.Match[str]) -> str:
    backslashes = match.group(1)
    if backslashes is None or len(backslashes) % 2 == 0:
        return match.group(0)  # a code span, or backslashes trafilatura did not add
    return "\\" * (len(backslashes) // 2) + match.group(2)
