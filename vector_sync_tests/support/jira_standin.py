"""A stand-in for Jira, for the jira source's tests: NOT the real service (which cannot be
reached from here) but a loopback server (support/atlassian_standin.py) answering the subset
of the Jira REST API the source calls, with bodies shaped as Atlassian's public reference
documents them.

Jira Cloud (the default): `GET /rest/api/3/search/jql` (`issues`, `nextPageToken` on every
page but the last, `isLast`; at most 5000 issues a page when only id or key is asked, 100
otherwise), descriptions and comment bodies as ADF documents, `GET /rest/api/3/issue/{id}/
comment` (startAt paging), and the retired `/rest/api/{2,3}/search` answering 410 with
Atlassian's retirement message. `data_center=True`: `GET /rest/api/2/search` (startAt,
total) and wiki markup instead, no v3. A JQL it cannot accept is a 400 with Jira's error
body (`{"errorMessages": [...], "errors": {}}`), see support/jql.py.

Issues are seeded from real prose (support/prose.py). Tests change them the way people do in
Jira (edit, comment, transition, move to another project, delete, create); every change
moves `updated` on by a minute of the stand-in's clock.
"""

from __future__ import annotations

import base64
import copy
import itertools
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from vector_sync_tests.support.atlassian_standin import AtlassianStandIn, Reply, Request
from vector_sync_tests.support.jira_content import adf, wiki
from vector_sync_tests.support.jql import JqlError, Query
from vector_sync_tests.support.prose import pieces

RETIRED = ("The requested API has been removed. Please migrate to the /rest/api/3/search/jql "
           "API. A full migration guideline is available at "
           "https://developer.atlassian.com/changelog/#CHANGE-2046")
UNBOUNDED = ("Unbounded JQL queries are not allowed here. Please add a search restriction to "
             "your query.")
NOT_FOUND = "Issue does not exist or you do not have permission to see it."
PEOPLE = ["Ada Lovelace", "Grace Hopper", "Alan Turing", "Katherine Johnson", "Edsger Dijkstra"]
STATUSES = ["To Do", "In Progress", "In Review", "Done"]
PRIORITIES = ["Highest", "High", "Medium", "Low"]
TYPES = ["Task", "Bug", "Story"]


@dataclass
class Comment:
    id: int
    author: str
    created: datetime
    text: str  # Markdown: stored as ADF (Cloud) or wiki markup (Data Center)
    visibility: dict[str, str] | None = None


@dataclass
class Issue:
    id: int
    key: str
    summary: str
    description: str  # Markdown, as for comments
    created: datetime
    updated: datetime
    status: str = "To Do"
    assignee: str | None = None
    labels: list[str] = field(default_factory=list)
    priority: str = "Medium"
    components: list[str] = field(default_factory=list)
    fix_versions: list[str] = field(default_factory=list)
    issue_type: str = "Task"
    security: str | None = None
    comments: list[Comment] = field(default_factory=list)

    @property
    def project(self) -> str:
        return self.key.split("-")[0]


def stamp(moment: datetime) -> str:
    """Jira's timestamp format: 2024-01-01T00:01:00.000+0000."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}" + \
        moment.strftime("%z")


class JiraStandIn(AtlassianStandIn):
    """Jira Cloud (or, with `data_center=True`, Data Center) on loopback."""

    def __init__(self, *, data_center: bool = False, comments_in_search: int = 20,
                 **settings: Any) -> None:
        super().__init__(**settings)
        self.data_center = data_center
        self.comments_in_search = comments_in_search  # a search's issue holds this many
        self.issues: dict[int, Issue] = {}
        self.projects: dict[str, int] = {}  # project key -> its last issue number
        self.clock = datetime(2024, 1, 1, tzinfo=UTC)
        self._ids = itertools.count(10000)
        self._comment_ids = itertools.count(20000)
        self._bodies: dict[tuple[str, bool], Any] = {}  # (Markdown, wiki?) -> body, cached
        version = "2" if data_center else "3"
        if data_center:
            self.route("GET", r"/rest/api/2/search", self._search_v2)
        else:
            self.route("GET", r"/rest/api/3/search/jql", self._search_jql)
            self.route("GET", r"/rest/api/[23]/search", lambda request: Reply(
                410, {"errorMessages": [RETIRED], "errors": {}}))
        self.route("GET", rf"/rest/api/{version}/issue/([^/]+)/comment", self._comments)

    # --- content -----------------------------------------------------------------------

    def tick(self) -> datetime:
        self.clock += timedelta(minutes=1)
        return self.clock

    def seed(self, count: int, projects: tuple[str, ...] = ("ENG", "OPS", "DOCS")) -> None:
        """`count` issues of real prose, spread over `projects`; some with comments."""
        prose = pieces()
        for n in range(count):
            piece = prose[n % len(prose)]
            summary = piece.title if n < len(prose) else f"{piece.title} ({n // len(prose)})"
            issue = self.create(projects[n % len(projects)], summary, piece.markdown,
                                status=STATUSES[n % 4], priority=PRIORITIES[n % 4],
                                assignee=PEOPLE[n % 5] if n % 3 else None,
                                labels=[piece.source.split("/")[0].removesuffix(".md")],
                                components=["Docs"] if n % 2 else ["Core", "Sync"],
                                fix_versions=[f"1.{n % 3}"], issue_type=TYPES[n % 3])
            for c in range(n % 3):  # 0, 1 or 2 comments, each another section's opening
                other = prose[(n + 7 * (c + 1)) % len(prose)].markdown.split("\n\n")[0]
                issue.comments.append(Comment(next(self._comment_ids), PEOPLE[(n + c) % 5],
                                              issue.created, other))

    def create(self, project: str, summary: str, description: str, **fields: Any) -> Issue:
        number = self.projects.get(project, 0) + 1
        self.projects[project] = number
        moment = self.tick()
        issue = Issue(next(self._ids), f"{project}-{number}", summary, description, moment,
                      moment, **fields)
        self.issues[issue.id] = issue
        return issue

    def edit(self, issue: Issue, **fields: Any) -> None:
        """Set fields (description, summary, status, ...), as an edit or a transition."""
        for name, value in fields.items():
            setattr(issue, name, value)
        issue.updated = self.tick()

    def comment(self, issue: Issue, author: str, text: str,
                visibility: dict[str, str] | None = None) -> None:
        issue.comments.append(Comment(next(self._comment_ids), author, self.tick(), text,
                                      visibility))
        issue.updated = self.clock

    def move(self, issue: Issue, project: str) -> None:
        """Jira's Move: the issue gets the next key of the other project, keeps its id."""
        number = self.projects.get(project, 0) + 1
        self.projects[project] = number
        issue.key = f"{project}-{number}"
        issue.updated = self.tick()

    def delete(self, issue: Issue) -> None:
        del self.issues[issue.id]

    def snapshot(self) -> Any:
        """The issues as they are now, for restore()."""
        return copy.deepcopy((self.issues, self.projects, self.clock))

    def restore(self, snapshot: Any) -> None:
        self.issues, self.projects, self.clock = copy.deepcopy(snapshot)

    def find(self, id_or_key: str) -> Issue | None:
        if id_or_key.isdigit():
            return self.issues.get(int(id_or_key))
        return next((i for i in self.issues.values() if i.key == id_or_key.upper()), None)

    def by_key(self, key: str) -> Issue:
        found = self.find(key)
        assert found is not None, key
        return found

    def jql_value(self, issue: Issue, name: str) -> Any:
        """An issue's value of a JQL field, as the query compares it."""
        return {"project": issue.project, "id": issue.id, "status": issue.status.lower(),
                "labels": [label.lower() for label in issue.labels],
                "assignee": (issue.assignee or "").lower() or None,
                "priority": issue.priority.lower(), "issuetype": issue.issue_type.lower(),
                "summary": issue.summary.lower(), "created": issue.created,
                "updated": issue.updated,
                "text": f"{issue.summary} {issue.description}".lower()}[name]

    # --- the API ---------------------------------------------------------------------------

    def _query(self, jql: str) -> tuple[list[Issue], Reply | None]:
        try:
            query = Query(jql, self)
        except JqlError as error:
            return [], Reply(400, {"errorMessages": [str(error)], "errors": {}})
        found = [issue for issue in self.issues.values() if query.matches(issue)]
        found.sort(key=lambda issue: issue.id)
        for name, descending in reversed(query.order):
            found.sort(key=lambda issue: self.jql_value(issue, name), reverse=descending)
        return found, None

    def _search_jql(self, request: Request) -> Reply:
        jql = request.query.get("jql", "").strip()
        if not jql:
            return Reply(400, {"errorMessages": [UNBOUNDED], "errors": {}})
        found, error = self._query(jql)
        if error is not None:
            return error
        token = request.query.get("nextPageToken")
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
        except ValueError:
            return Reply(400, {"errorMessages": ["The provided next page token is invalid."],
                               "errors": {}})
        names = _field_names(request.query.get("fields", ""))
        cap = 5000 if set(names) <= {"id", "key"} else 100
        size = min(int(request.query.get("maxResults", 50)), cap)
        page = found[start:start + size]
        body: dict[str, Any] = {"issues": [self._issue(i, names, 3) for i in page],
                                "isLast": start + size >= len(found)}
        if start + size < len(found):  # like Cloud, the last page has no token at all
            body["nextPageToken"] = base64.urlsafe_b64encode(
                str(start + size).encode()).decode()
        return Reply(200, body)

    def _search_v2(self, request: Request) -> Reply:
        found, error = self._query(request.query.get("jql", ""))
        if error is not None:
            return error
        start = int(request.query.get("startAt", 0))
        size = min(int(request.query.get("maxResults", 50)), 1000)
        names = _field_names(request.query.get("fields", "")) or ["*navigable"]
        return Reply(200, {"expand": "schema,names", "startAt": start, "maxResults": size,
                           "total": len(found), "issues": [
                               self._issue(i, names, 2) for i in found[start:start + size]]})

    def _comments(self, request: Request) -> Reply:
        issue = self.find(request.match.group(1))
        if issue is None:
            return Reply(404, {"errorMessages": [NOT_FOUND], "errors": {}})
        start = int(request.query.get("startAt", 0))
        size = min(int(request.query.get("maxResults", 50)), 100)
        wiki_bodies = self.data_center
        return Reply(200, {"startAt": start, "maxResults": size, "total": len(issue.comments),
                           "comments": [self._comment(c, wiki_bodies)
                                        for c in issue.comments[start:start + size]]})

    # --- JSON as the API shapes it -------------------------------------------------------

    def _body(self, markdown: str, wiki_markup: bool) -> Any:
        if not markdown:
            return None
        key = (markdown, wiki_markup)
        if key not in self._bodies:
            self._bodies[key] = wiki(markdown) if wiki_markup else adf(markdown)
        return self._bodies[key]

    def _person(self, name: str | None) -> dict[str, Any] | None:
        if name is None:
            return None
        handle = name.lower().replace(" ", ".")
        who = {"name": handle} if self.data_center else {
            "accountId": f"5b10ac8d82e05b22cc7d4e{zlib.crc32(name.encode()) % 1000:03d}",
            "accountType": "atlassian"}
        return {"self": f"{self.site}/rest/api/2/user?x={handle}", **who,
                "displayName": name, "active": True, "timeZone": "UTC"}

    def _comment(self, comment: Comment, wiki_markup: bool) -> dict[str, Any]:
        return {"self": f"{self.site}/rest/api/3/comment/{comment.id}", "id": str(comment.id),
                "author": self._person(comment.author), "body": self._body(comment.text,
                                                                          wiki_markup),
                "updateAuthor": self._person(comment.author), "created": stamp(comment.created),
                "updated": stamp(comment.created), "jsdPublic": True,
                **({"visibility": {**comment.visibility, "identifier": comment.visibility[
                    "value"]}} if comment.visibility else {})}

    def _issue(self, issue: Issue, names: list[str], version: int) -> dict[str, Any]:
        wiki_markup = version == 2
        every = "*all" in names or "*navigable" in names
        shown = self.comments_in_search
        values: dict[str, Any] = {
            "summary": issue.summary,
            "description": self._body(issue.description, wiki_markup),
            "comment": {"comments": [self._comment(c, wiki_markup)
                                     for c in issue.comments[:shown]],
                        "self": f"{self.site}/rest/api/{version}/issue/{issue.id}/comment",
                        "maxResults": shown, "total": len(issue.comments), "startAt": 0},
            "status": {"name": issue.status, "id": str(STATUSES.index(issue.status) + 1),
                       "statusCategory": {"key": "done" if issue.status == "Done" else "new"}},
            "assignee": self._person(issue.assignee),
            "labels": list(issue.labels),
            "priority": {"name": issue.priority, "id": str(PRIORITIES.index(issue.priority))},
            "components": [{"id": str(100 + n), "name": c}
                           for n, c in enumerate(issue.components)],
            "fixVersions": [{"id": str(200 + n), "name": v, "released": False,
                             "archived": False} for n, v in enumerate(issue.fix_versions)],
            "issuetype": {"id": str(TYPES.index(issue.issue_type) + 1),
                          "name": issue.issue_type, "subtask": False},
            "project": {"id": str(zlib.crc32(issue.project.encode()) % 10000), "key": issue.project,
                        "name": issue.project.title()},
            "security": {"id": "10100", "name": issue.security} if issue.security else None,
            "created": stamp(issue.created),
            "updated": stamp(issue.updated),
        }
        return {"expand": "renderedFields,names,schema,operations,editmeta,changelog",
                "id": str(issue.id), "self": f"{self.site}/rest/api/{version}/issue/{issue.id}",
                "key": issue.key,
                "fields": {n: v for n, v in values.items() if every or n in names}}


def _field_names(fields: str) -> list[str]:
    return [name.strip() for name in fields.split(",") if name.strip()]
