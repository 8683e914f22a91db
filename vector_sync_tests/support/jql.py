"""The subset of JQL the Jira stand-in understands, with Jira's own error messages for what
it rejects: clauses `field op value` joined by AND / OR / NOT and parentheses, operators
= != > >= < <= ~ IN and NOT IN, quoted or bare values, value lists, dates ("2024/05/01
10:20", "2024-05-01", or relative: "-15m", "-2d"), and ORDER BY. Fields: project, id, key
(issuekey), status, labels, assignee, priority, type (issuetype), summary, text, created,
updated. The stand-in's Jira runs in UTC, so a JQL date is read as UTC.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

OPERATORS = ("'=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and "
             "'IS NOT'")
_TOKEN = re.compile(r'\s*(?:("(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')|(!=|>=|<=|!~|[=<>~(),])'
                    r"|([^\s=!<>~(),\"']+))")
_FIELDS = {"project": "project", "id": "id", "key": "id", "issuekey": "id", "issue": "id",
           "status": "status", "labels": "labels", "assignee": "assignee",
           "priority": "priority", "type": "issuetype", "issuetype": "issuetype",
           "summary": "summary", "text": "text", "created": "created", "updated": "updated"}
Predicate = Callable[[Any], bool]


class JqlError(Exception):
    """A query Jira rejects (400): the message is the one in its `errorMessages`."""


class Query:
    """A parsed query: `matches(issue)` and `order` [(field, descending)]."""

    def __init__(self, jql: str, standin: Any) -> None:
        self.standin = standin  # knows the projects and issues, for Jira's value checks
        self.tokens: list[tuple[str, int]] = []
        position = 0
        text = jql.strip()
        while position < len(text):
            match = _TOKEN.match(text, position)
            if not match or match.end() == position:
                raise JqlError(f"Error in the JQL Query: The character '{text[position]}' is "
                               f"a reserved JQL character. You must enclose it in a string or "
                               f"use the escape '\\u{ord(text[position]):04x}' instead. "
                               f"(line 1, character {position + 1})")
            token = match.group(1) or match.group(2) or match.group(3)
            self.tokens.append((token, match.start(match.lastindex or 0) + 1))
            position = match.end()
        self.at = 0
        self.order: list[tuple[str, bool]] = []
        self.matches: Predicate = lambda issue: True
        if self.tokens and not self._word("order"):
            self.matches = self._or()
        if self._word("order"):
            self._order_by()
        if self.at < len(self.tokens):
            raise self._expected("either 'OR' or 'AND'")

    # --- tokens ----------------------------------------------------------------------------

    def _peek(self) -> str | None:
        return self.tokens[self.at][0] if self.at < len(self.tokens) else None

    def _word(self, word: str) -> bool:
        token = self._peek()
        return token is not None and token.lower() == word

    def _next(self) -> str:
        token = self._peek()
        if token is None:
            raise JqlError("Error in the JQL Query: Expecting more input at the end of the "
                           "query.")
        self.at += 1
        return token

    def _expected(self, what: str) -> JqlError:
        token, column = self.tokens[self.at] if self.at < len(self.tokens) else ("", 0)
        return JqlError(f"Error in the JQL Query: Expecting {what} but got '{token}'. "
                        f"(line 1, character {column})")

    # --- grammar ---------------------------------------------------------------------------

    def _or(self) -> Predicate:
        parts = [self._and()]
        while self._word("or"):
            self.at += 1
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else lambda issue: any(p(issue) for p in parts)

    def _and(self) -> Predicate:
        parts = [self._not()]
        while self._word("and"):
            self.at += 1
            parts.append(self._not())
        return parts[0] if len(parts) == 1 else lambda issue: all(p(issue) for p in parts)

    def _not(self) -> Predicate:
        if self._word("not"):
            self.at += 1
            inner = self._not()
            return lambda issue: not inner(issue)
        if self._peek() == "(":
            self.at += 1
            inner = self._or()
            if self._next() != ")":
                self.at -= 1
                raise self._expected("')'")
            return inner
        return self._clause()

    def _clause(self) -> Predicate:
        name = _unquote(self._next())
        field = _FIELDS.get(name.lower())
        if field is None:
            raise JqlError(f"Field '{name}' does not exist or you do not have permission "
                           "to view it.")
        operator = (self._peek() or "").lower()
        if operator == "not" and self.at + 1 < len(self.tokens) and \
                self.tokens[self.at + 1][0].lower() == "in":
            self.at += 2
            values = self._list(field)
            return lambda issue: self.standin.jql_value(issue, field) not in values
        if operator == "in":
            self.at += 1
            values = self._list(field)
            return lambda issue: _any_in(self.standin.jql_value(issue, field), values)
        if operator not in ("=", "!=", ">", ">=", "<", "<=", "~"):
            token, column = self.tokens[self.at] if self.at < len(self.tokens) else ("", 0)
            raise JqlError(f"Error in the JQL Query: Expecting operator but got '{token}'. "
                           f"The valid operators are {OPERATORS}. (line 1, character {column})")
        self.at += 1
        value = self._value(field, self._next())
        return _compare(field, operator, value, self.standin)

    def _list(self, field: str) -> set[Any]:
        if self._next() != "(":
            self.at -= 1
            raise self._expected("'('")
        values = {self._value(field, self._next())}
        while self._peek() == ",":
            self.at += 1
            values.add(self._value(field, self._next()))
        if self._next() != ")":
            self.at -= 1
            raise self._expected("')'")
        return values

    def _value(self, field: str, token: str) -> Any:
        raw = _unquote(token)
        if field == "project":
            if raw.upper() not in self.standin.projects:
                raise JqlError(f"The value '{raw}' does not exist for the field 'project'.")
            return raw.upper()
        if field == "id":
            issue = self.standin.find(raw)
            if issue is None:
                raise JqlError(f"An issue with key '{raw}' does not exist for field "
                               f"'{'id' if raw.isdigit() else 'key'}'.")
            return issue.id
        if field in ("created", "updated"):
            return _date(raw, field)
        return raw.lower()

    def _order_by(self) -> None:
        self.at += 1
        if not self._word("by"):
            raise self._expected("'by'")
        self.at += 1
        while True:
            name = _unquote(self._next())
            field = _FIELDS.get(name.lower())
            if field is None:
                raise JqlError(f"Not able to sort using field '{name}'.")
            descending = False
            if self._word("asc") or self._word("desc"):
                descending = self._next().lower() == "desc"
            self.order.append((field, descending))
            if self._peek() != ",":
                return
            self.at += 1


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "\"'":
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    return token


def _date(raw: str, field: str) -> datetime:
    relative = re.fullmatch(r"([-+]?)(\d+)([mhdw])", raw)
    if relative:
        unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[relative.group(3)]
        delta = timedelta(**{unit: int(relative.group(2))})
        return datetime.now(UTC) + (delta if relative.group(1) == "+" else -delta)
    for pattern in ("%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M", "%Y/%m/%d", "%Y-%m-%d"):
        try:
            return datetime.strptime(raw, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise JqlError(f"Date value '{raw}' for field '{field}' is invalid. Valid formats "
                   "include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', "
                   "'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'.")


def _any_in(actual: Any, values: set[Any]) -> bool:
    if isinstance(actual, list):
        return any(a in values for a in actual)
    return actual in values


def _compare(field: str, operator: str, value: Any, standin: Any) -> Predicate:
    def test(issue: Any) -> bool:
        actual = standin.jql_value(issue, field)
        if operator == "~":
            return str(value) in str(actual).lower()
        if isinstance(actual, list):
            return (value in actual) == (operator == "=")
        if operator == "=":
            return bool(actual == value)
        if operator == "!=":
            return bool(actual != value)
        if actual is None:
            return False
        return bool({">": actual > value, ">=": actual >= value, "<": actual < value,
                     "<=": actual <= value}[operator])
    return test
