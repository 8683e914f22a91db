"""A stand-in for Confluence Cloud (NOT the real service, which cannot be reached from here):
the subset of its REST API v1 the confluence source calls, answered the way the public API
reference documents it, over loopback HTTP (the server, auth and faults come from
atlassian_standin.py).

- GET /wiki/rest/api/space?spaceKey=A&spaceKey=B: the spaces the account can see.
- GET /wiki/rest/api/content/search?cql=...&limit=&cursor=&expand=...: pages matching a CQL
  query (the subset parsed below: type, space, id, label, title, text,
  lastmodified, created, ancestor, parent, creator; = != ~ < <= > >= in, not in; AND OR NOT,
  parentheses, `order by`), paged by a cursor in `_links.next`, which is relative to /wiki as
  on Cloud. Only current pages the account can see are found: a trashed page, or one whose
  restrictions (its own or an ancestor's) leave the account out, is not. Results are capped
  at `page_cap` (100) per request, or `body_page_cap` (25) when bodies are expanded, whatever
  `limit` asks.
- A CQL it cannot parse is a 400 with Confluence's error body.

The content comes from `seed()` (real prose: support/prose.py) and changes through `add`,
`edit` (a new version), `move` (a new parent: the version stays, as on Cloud), `label`,
`trash`, `hide` (restricted away from the sync account) and `restrict` (restricted, but the
account may still read it).
"""

from __future__ import annotations

import base64
import re
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from vector_sync_tests.support import prose
from vector_sync_tests.support.atlassian_standin import AtlassianStandIn, Reply, Request

PAGE_CAP, BODY_PAGE_CAP = 100, 25
AUTHORS = ["Ada Lovelace", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov"]


@dataclass
class Page:
    id: str
    space: str
    title: str
    storage: str
    parent: str | None = None
    version: int = 1
    when: datetime = field(default_factory=lambda: datetime.now(UTC))
    creator: str = AUTHORS[0]
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    labels: list[str] = field(default_factory=list)
    status: str = "current"  # or "trashed"
    hidden: bool = False  # its read restrictions leave the sync account out
    restricted: bool = False  # it has read restrictions, which include the sync account


class BadCql(Exception):
    pass


class ConfluenceStandIn(AtlassianStandIn):
    def __init__(self, page_cap: int = PAGE_CAP, body_page_cap: int = BODY_PAGE_CAP,
                 **auth: Any) -> None:
        super().__init__(context="/wiki", **auth)
        self.page_cap, self.body_page_cap = page_cap, body_page_cap
        self.spaces: dict[str, str] = {}  # key -> name
        self.pages: dict[str, Page] = {}
        self._next_id = 65537
        self.route("GET", r"/rest/api/space", self._space)
        self.route("GET", r"/rest/api/content/search", self._search)

    # --- content ---------------------------------------------------------------------------

    def seed(self, limit: int | None = None) -> list[Page]:
        """The repository's prose as pages: README and docs/ in space DOCS, the example vault
        in space NOTES; each file's later sections are children of its first."""
        self.spaces.update({"DOCS": "Documentation", "NOTES": "Team notes"})
        first: dict[str, Page] = {}
        added = []
        for n, piece in enumerate(prose.pieces()[:limit]):
            space = "NOTES" if piece.source.startswith("examples/") else "DOCS"
            parent = first.get(piece.source)
            folder = piece.source.split("/")[-2] if "/" in piece.source else "readme"
            page = self.add(space, piece.title, prose.storage_xhtml(piece.markdown),
                            parent=parent.id if parent else None,
                            labels=[folder.lower().replace(" ", "-")],
                            creator=AUTHORS[n % len(AUTHORS)])
            first.setdefault(piece.source, page)
            added.append(page)
        return added

    def add(self, space: str, title: str, storage: str, parent: str | None = None,
            labels: list[str] | None = None, creator: str = AUTHORS[0]) -> Page:
        self.spaces.setdefault(space, space.title())
        page = Page(str(self._next_id), space, title, storage, parent, labels=labels or [],
                    creator=creator)
        self._next_id += 1
        self.pages[page.id] = page
        return page

    def edit(self, page_id: str, storage: str | None = None, title: str | None = None) -> None:
        page = self.pages[page_id]
        page.storage = storage if storage is not None else page.storage
        page.title = title if title is not None else page.title
        page.version += 1
        page.when = datetime.now(UTC)

    def move(self, page_id: str, parent: str | None) -> None:
        self.pages[page_id].parent = parent  # as on Cloud: a move keeps the version

    def trash(self, page_id: str) -> None:
        self.pages[page_id].status = "trashed"

    def hide(self, page_id: str) -> None:
        self.pages[page_id].hidden = True

    def restrict(self, page_id: str) -> None:
        self.pages[page_id].restricted = True

    def ancestors(self, page: Page) -> list[Page]:
        chain: list[Page] = []
        parent = page.parent
        while parent is not None:
            chain.insert(0, self.pages[parent])
            parent = self.pages[parent].parent
        return chain

    def visible(self, page: Page) -> bool:
        return page.status == "current" and not any(
            p.hidden for p in [*self.ancestors(page), page])

    # --- the API ---------------------------------------------------------------------------

    def _space(self, request: Request) -> Reply:
        keys = request.params.get("spaceKey") or list(self.spaces)
        results = [{"id": 1000 + n, "key": key, "name": self.spaces[key], "type": "global",
                    "status": "current", "_links": {"webui": f"/spaces/{key}"}}
                   for n, key in enumerate(keys) if key in self.spaces]
        return Reply(200, {"results": results, "start": 0, "limit": 25, "size": len(results),
                           "_links": self._links("/rest/api/space")})

    def _search(self, request: Request) -> Reply:
        cql = request.query.get("cql", "")
        try:
            matches, order = parse_cql(cql)
        except BadCql as error:
            return Reply(400, {
                "statusCode": 400,
                "data": {"authorized": False, "valid": True, "allowedInReadOnlyMode": True,
                         "errors": [], "successful": False},
                "message": "com.atlassian.confluence.api.service.exceptions."
                           f"BadRequestException: Could not parse cql : {cql} ({error})",
                "reason": "Bad Request"})
        expand = {e for e in request.query.get("expand", "").split(",") if e}
        found = [p for p in self.pages.values() if self.visible(p) and matches(self, p)]
        key, descending = order
        found.sort(key=lambda p: _value(self, p, key), reverse=descending)
        cursor = request.query.get("cursor")
        start = int(base64.b64decode(cursor)) if cursor else int(request.query.get("start", 0))
        cap = self.body_page_cap if any(e.startswith("body") for e in expand) \
            else self.page_cap
        limit = min(int(request.query.get("limit", 25)), cap)
        batch = found[start:start + limit]
        links = self._links("/rest/api/content/search")
        if start + limit < len(found):
            following = {**request.query, "limit": str(limit), "start": str(start + limit),
                         "cursor": base64.b64encode(str(start + limit).encode()).decode()}
            links["next"] = "/rest/api/content/search?" + urlencode(following)  # no /wiki
        return Reply(200, {"results": [self._content(p, expand) for p in batch],
                           "start": start, "limit": limit, "size": len(batch),
                           "cqlQuery": cql, "_links": links})

    def _links(self, path: str) -> dict[str, str]:
        return {"base": self.url, "context": self.context, "self": self.url + path}

    def _content(self, page: Page, expand: set[str]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": page.id, "type": "page", "status": page.status, "title": page.title,
            "_links": {"webui": f"/spaces/{page.space}/pages/{page.id}/"
                                f"{quote(page.title.replace(' ', '+'), safe='+')}",
                       "tinyui": f"/x/{page.id}",
                       "self": f"{self.url}/rest/api/content/{page.id}"},
            "_expandable": {e: "" for e in ("container", "operations", "children", "history",
                                            "version", "ancestors", "body", "space",
                                            "metadata", "restrictions")
                            if not any(x.split(".")[0] == e for x in expand)}}
        if "version" in expand:
            body["version"] = {"by": _user(AUTHORS[page.version % len(AUTHORS)]),
                               "when": _iso(page.when), "number": page.version,
                               "minorEdit": False, "message": ""}
        if "ancestors" in expand:
            body["ancestors"] = [{"id": a.id, "type": "page", "status": a.status,
                                  "title": a.title} for a in self.ancestors(page)]
        if "space" in expand:
            body["space"] = {"id": 1000, "key": page.space, "name": self.spaces[page.space],
                             "type": "global", "status": "current"}
        if "history" in expand:
            body["history"] = {"latest": True, "createdBy": _user(page.creator),
                               "createdDate": _iso(page.created)}
        if "metadata.labels" in expand:
            labels = [{"prefix": "global", "name": name, "id": str(zlib.crc32(name.encode())),
                       "label": name} for name in page.labels]
            body["metadata"] = {"labels": {"results": labels, "start": 0, "limit": 200,
                                           "size": len(labels)}}
        if "body.storage" in expand:
            body["body"] = {"storage": {"value": page.storage, "representation": "storage",
                                        "embeddedContent": []}}
        if any(e.startswith("restrictions.read") for e in expand):
            users = [_user("Sync Bot")] if page.restricted else []
            body["restrictions"] = {"read": {"operation": "read", "restrictions": {
                "user": {"results": users, "start": 0, "limit": 200, "size": len(users)},
                "group": {"results": [], "start": 0, "limit": 200, "size": 0}}}}
        return body


def _user(name: str) -> dict[str, Any]:
    account = "557058:" + base64.b16encode(name.encode()).decode().lower()[:24]
    return {"type": "known", "accountId": account, "accountType": "atlassian",
            "publicName": name, "displayName": name}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{moment.microsecond // 1000:03d}Z"


# --- CQL, the subset the source and the tests use ---------------------------------------------

TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')|(?P<op>!=|!~|>=|<=|'
                   r'[=~<>(),])|(?P<word>[A-Za-z0-9_.:\-+/]+))')
FIELDS = {"type", "space", "id", "label", "title", "text", "lastmodified", "created",
          "ancestor", "parent", "creator"}
Matcher = Any  # (standin, page) -> bool


def _tokens(cql: str) -> list[str]:
    tokens, position = [], 0
    while position < len(cql.rstrip()):
        match = TOKEN.match(cql, position)
        if not match or match.end() == position:
            raise BadCql(f"unexpected character at {position}")
        tokens.append(match.group(match.lastgroup or "word"))
        position = match.end()
    return tokens


def parse_cql(cql: str) -> tuple[Matcher, tuple[str, bool]]:
    tokens = _tokens(cql)
    order = ("id", False)
    lowered = [t.lower() for t in tokens]
    for n in range(len(tokens) - 1):
        if lowered[n] == "order" and lowered[n + 1] == "by":
            rest = lowered[n + 2:]
            if not rest or rest[0] not in FIELDS or rest[1:] not in ([], ["asc"], ["desc"]):
                raise BadCql("bad order by")
            order, tokens = (rest[0], rest[1:] == ["desc"]), tokens[:n]
            break
    if not tokens:
        raise BadCql("empty query")
    matcher, position = _or(tokens, 0)
    if position != len(tokens):
        raise BadCql(f"unexpected {tokens[position]!r}")
    return matcher, order


def _or(tokens: list[str], at: int) -> tuple[Matcher, int]:
    left, at = _and(tokens, at)
    while at < len(tokens) and tokens[at].lower() == "or":
        right, at = _and(tokens, at + 1)
        left = (lambda a, b: lambda s, p: a(s, p) or b(s, p))(left, right)
    return left, at


def _and(tokens: list[str], at: int) -> tuple[Matcher, int]:
    left, at = _not(tokens, at)
    while at < len(tokens) and tokens[at].lower() == "and":
        right, at = _not(tokens, at + 1)
        left = (lambda a, b: lambda s, p: a(s, p) and b(s, p))(left, right)
    return left, at


def _not(tokens: list[str], at: int) -> tuple[Matcher, int]:
    if at < len(tokens) and tokens[at].lower() == "not":
        inner, at = _not(tokens, at + 1)
        return (lambda s, p: not inner(s, p)), at
    if at < len(tokens) and tokens[at] == "(":
        inner, at = _or(tokens, at + 1)
        if at >= len(tokens) or tokens[at] != ")":
            raise BadCql("missing )")
        return inner, at + 1
    return _clause(tokens, at)


def _clause(tokens: list[str], at: int) -> tuple[Matcher, int]:
    if at >= len(tokens):
        raise BadCql("a clause is missing")
    name = tokens[at].lower()
    if name not in FIELDS:
        raise BadCql(f"unknown field {tokens[at]!r}")
    at += 1
    operator = tokens[at].lower() if at < len(tokens) else ""
    if operator == "not" and at + 1 < len(tokens) and tokens[at + 1].lower() == "in":
        operator, at = "not in", at + 1
    if operator not in {"=", "!=", "~", "!~", "<", "<=", ">", ">=", "in", "not in"}:
        raise BadCql(f"bad operator after {name}")
    at += 1
    if operator in ("in", "not in"):
        if at >= len(tokens) or tokens[at] != "(":
            raise BadCql("in needs a list")
        values, at = [], at + 1
        while at < len(tokens) and tokens[at] != ")":
            if tokens[at] != ",":
                values.append(_literal(tokens[at]))
            at += 1
        if at >= len(tokens):
            raise BadCql("missing )")
        at += 1
    else:
        if at >= len(tokens):
            raise BadCql(f"no value after {name} {operator}")
        if at + 1 < len(tokens) and tokens[at + 1] == "(":  # a function: now("-1d")
            call, close = tokens[at].lower(), tokens.index(")", at)
            argument = _literal(tokens[at + 2]) if close > at + 2 else ""
            values, at = [_function(call, argument)], close + 1
        else:
            values, at = [_literal(tokens[at])], at + 1
    return _compare(name, operator, values), at


def _literal(token: str) -> str:
    if token[:1] in "\"'":
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    return token


def _function(name: str, argument: str) -> str:
    if name != "now":
        raise BadCql(f"unknown function {name}")
    moment = datetime.now(UTC)
    match = re.fullmatch(r"([+-]?\d+)([yMwdhm])", argument.strip()) if argument else None
    if argument and not match:
        raise BadCql(f"bad now() argument {argument!r}")
    if match:
        unit = {"y": 525600, "M": 43200, "w": 10080, "d": 1440, "h": 60, "m": 1}[match[2]]
        moment += timedelta(minutes=int(match[1]) * unit)
    return moment.strftime("%Y-%m-%d %H:%M")


def _value(standin: ConfluenceStandIn, page: Page, name: str) -> Any:
    return {"type": "page", "space": page.space, "id": int(page.id), "title": page.title,
            "text": page.title + " " + page.storage, "lastmodified": page.when,
            "created": page.created, "parent": page.parent or "", "creator": page.creator,
            }.get(name)


def _date(text: str) -> datetime:
    for layout in ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d"):
        try:
            return datetime.strptime(text, layout).replace(tzinfo=UTC)  # the account's zone
        except ValueError:
            pass
    raise BadCql(f"not a date: {text!r}")


def _compare(name: str, operator: str, values: list[str]) -> Matcher:
    if name in ("lastmodified", "created"):
        if operator not in ("=", "<", "<=", ">", ">="):
            raise BadCql(f"{name} takes a date comparison")
        bound = _date(values[0])
        test = {"=": lambda v: v.replace(second=0, microsecond=0) == bound,
                "<": lambda v: v < bound, "<=": lambda v: v <= bound,
                ">": lambda v: v > bound, ">=": lambda v: v >= bound}[operator]
        return lambda s, p: test(_value(s, p, name))
    if operator in ("<", "<=", ">", ">="):
        raise BadCql(f"{name} cannot be compared with {operator}")

    def have(s: ConfluenceStandIn, p: Page) -> list[str]:
        if name == "label":
            return p.labels
        if name == "ancestor":
            return [a.id for a in s.ancestors(p)]
        return [str(_value(s, p, name))]

    if operator in ("~", "!~"):
        wanted = values[0].lower()
        hit = lambda s, p: any(wanted in v.lower() for v in have(s, p))  # noqa: E731
        return hit if operator == "~" else (lambda s, p: not hit(s, p))
    if operator in ("=", "in"):
        return lambda s, p: any(v in values for v in have(s, p))
    return lambda s, p: not any(v in values for v in have(s, p))
