"""An issue as Jira's REST API returns it, turned into the document's fields.

The fields (what a collection may `embed` or copy to the `payload`):
- `summary`, `description`, `comments`: the text. Description and comment bodies come as ADF
  (Cloud, REST v3) or wiki markup (Data Center, REST v2); both become the text a reader sees
  (adf.py, wiki.py). `comments` is every comment oldest first, each under a line naming its
  author and day; comments restricted to a group or role are left out.
- `key` (ENG-12), `url` (the site's /browse/ENG-12), `project` (ENG): they change when the
  issue moves to another project, so they belong in the payload; the document's id is the
  issue's id, which never changes.
- `status`, `assignee`, `priority`, `issue_type`, `security_level` (names), `labels`,
  `components`, `fix_versions` (lists of names), `updated_at` (ISO 8601, UTC). A field
  the issue has no value for (unassigned, no security level) is absent, not null.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from vector_sync.sources.jira.adf import adf_to_text
from vector_sync.sources.jira.wiki import wiki_to_text

# the document's fields, and the Jira field each is read from (None: from the issue itself)
JIRA_FIELD: dict[str, str | None] = {
    "key": None, "url": None, "project": "project", "summary": "summary",
    "description": "description", "comments": "comment", "status": "status",
    "assignee": "assignee", "labels": "labels", "priority": "priority",
    "components": "components", "fix_versions": "fixVersions", "issue_type": "issuetype",
    "security_level": "security", "updated_at": "updated",
}
HINT_VERSION = "j1"  # bump when a conversion changes: every issue is read again


def jira_fields(fields: Sequence[str] | None) -> list[str]:
    """The Jira fields to ask for, for the document fields a collection uses (None: all)."""
    wanted = JIRA_FIELD if fields is None else [f.split(".", 1)[0] for f in fields]
    names = {JIRA_FIELD.get(name) for name in wanted} - {None}
    return sorted({"updated", *(name for name in names if name)})


def hint(updated: str, key: str) -> str:
    """The version hint: `updated` changes with every edit, comment, transition or move;
    the key with a project's key renamed, which leaves `updated` alone."""
    return f"{HINT_VERSION}|{updated}|{key}"


def document_fields(issue: Mapping[str, Any], comments: list[dict[str, Any]] | None,
                    site_url: str, wiki: bool) -> dict[str, Any]:
    """The document's fields; `comments`: every comment when the search's page held only
    some, else None (the page's are used). Raises ValueError (or a subclass, such as
    InvalidAdf) for a value that is not what the API documents."""
    key = issue.get("key")
    if not isinstance(key, str):
        raise ValueError("the issue has no key")
    raw = issue.get("fields")
    fields: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    text = wiki_to_text if wiki else adf_to_text
    if comments is None:
        comments = comment_page(fields)[0]
    summary = fields.get("summary")
    project = fields.get("project")
    values = {
        "key": key,
        "url": f"{site_url}/browse/{key}",
        "project": project.get("key") if isinstance(project, Mapping) else key.split("-")[0],
        "summary": summary.strip() if isinstance(summary, str) else "",
        "description": _body(text, fields.get("description"), "description"),
        "comments": "\n\n".join(_comment(text, c) for c in comments
                                if not c.get("visibility")),
        "status": _name(fields.get("status")),
        "assignee": _person(fields.get("assignee")),
        "labels": [str(label) for label in fields.get("labels") or []],
        "priority": _name(fields.get("priority")),
        "components": _names(fields.get("components")),
        "fix_versions": _names(fields.get("fixVersions")),
        "issue_type": _name(fields.get("issuetype")),
        "security_level": _name(fields.get("security")),
        "updated_at": utc(fields.get("updated")),
    }
    # a value the issue does not have (no assignee, no security level) is left out rather
    # than null: the payload then simply lacks it, whichever way it is written to Qdrant
    return {name: value for name, value in values.items() if value is not None}


def comment_page(fields: Mapping[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """The comments a search returned with the issue, and whether they are all of them."""
    comment = fields.get("comment")
    if not isinstance(comment, Mapping):
        return [], True
    page = [c for c in comment.get("comments") or [] if isinstance(c, dict)]
    total = comment.get("total")
    return page, not isinstance(total, int) or total <= len(page)


def _body(text: Any, value: Any, what: str) -> str:
    if value is None:
        return ""
    try:
        return str(text(value))
    except ValueError as error:
        raise ValueError(f"its {what}: {error}") from None


def _comment(text: Any, comment: Mapping[str, Any]) -> str:
    author = _person(comment.get("author")) or "Someone"
    day = (utc(comment.get("created")) or "")[:10]
    body = _body(text, comment.get("body"), "comment " + str(comment.get("id", "")))
    return f"{author}{' on ' + day if day else ''} wrote:\n{body}".strip()


def _name(value: Any) -> str | None:
    if isinstance(value, Mapping):
        name = value.get("name") or value.get("value")
        return str(name) if name is not None else None
    return None


def _names(values: Any) -> list[str]:
    return [name for name in map(_name, values if isinstance(values, list) else [])
            if name is not None]


def _person(value: Any) -> str | None:
    if isinstance(value, Mapping):
        name = value.get("displayName") or value.get("name")
        return str(name) if name else None
    return None


def utc(value: Any) -> str | None:
    """A Jira timestamp ("2024-05-01T12:20:30.123+0200") as ISO 8601 UTC
    ("2024-05-01T10:20:30Z"); None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
