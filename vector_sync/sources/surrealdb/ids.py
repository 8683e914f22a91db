"""Record ids as text (a document's doc_id) and that text parsed back into the record.

The doc_id is SurrealDB's own `<string>` form where that parses back exactly (`t:1`,
`t:abc`, `t:⟨hello world⟩`, `t:u'…'`, `t:[1, 'x']`, `t:{ a: 1, b: 'c' }`, a decimal as
`1.5dec`, not as `1.5`, which reads as a float: another record). A datetime
(`2024-01-01 00:00:00+00:00`) and a duration (`Duration(elapsed=1000000000)`) inside an
array or object id keep the text ledgers already hold for them; record_literal() turns that
text into SurrealQL the engine parses back into the same record.
"""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from typing import Any

from surrealdb import RecordID

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ID_WORD = re.compile(r"[A-Za-z0-9_]+")
# the parts of an array or object id's text: quoted strings and ⟨…⟩ names are kept as they
# are (their content may look like anything); a datetime or duration as Python printed it is
# rewritten
_PARTS = re.compile(r"'(?:[^'\\]|\\.)*'|⟨(?:[^⟩\\]|\\.)*⟩"
                    r"|(?P<day>\d{4}-\d\d-\d\d) (?P<time>\d\d:\d\d:\d\d(?:\.\d+)?[+-]\d\d:\d\d)"
                    r"|Duration\(elapsed=(?P<ns>\d+)\)", re.DOTALL)


def record_string(record: RecordID) -> str:
    """A record id's doc_id (see the module's docstring)."""
    return f"{_identifier(str(record.table_name))}:{_id_part(record.id)}"


def record_literal(doc_id: str) -> str:
    """The SurrealQL of the record whose record_string() is `doc_id`, for `type::record()`
    or written into a query: every string in it is quoted or escaped."""
    table, _, key = doc_id.partition(":")
    if key.startswith("⟨") and key.endswith("⟩"):  # a string id, printed without escapes
        return f"{table}:{_bracketed(key[1:-1])}"
    if not key.startswith(("[", "{")):
        return doc_id
    return f"{table}:{_PARTS.sub(_part, key)}"


def _part(found: re.Match[str]) -> str:
    if found["day"]:
        return f"d'{found['day']}T{found['time']}'"
    if found["ns"]:
        return f"{found['ns']}ns"
    return found[0]


def _identifier(name: str) -> str:
    return name if _IDENTIFIER.fullmatch(name) else f"⟨{name}⟩"


def _bracketed(text: str) -> str:
    return "⟨" + text.replace("\\", "\\\\").replace("⟩", "\\⟩") + "⟩"


def _id_part(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        # a bare word unless it would read as a number
        return value if _ID_WORD.fullmatch(value) and not value.isdigit() else f"⟨{value}⟩"
    if isinstance(value, uuid.UUID):
        return f"u'{value}'"
    return _literal(value)


def _literal(value: Any) -> str:
    """A value inside an array or object id, as SurrealQL writes it (a datetime and a
    duration excepted: see the module's docstring)."""
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Decimal):
        return f"{value:f}dec"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, uuid.UUID):
        return f"u'{value}'"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_literal(item) for item in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{  }"
        return "{ " + ", ".join(f"{_key(str(k))}: {_literal(v)}"
                                for k, v in sorted(value.items())) + " }"
    if isinstance(value, RecordID):  # escaped here: it sits inside the outer id's text
        table, key = str(value.table_name), value.id
        return (f"{table if _IDENTIFIER.fullmatch(table) else _bracketed(table)}:"
                + (_bracketed(key) if isinstance(key, str) and _id_part(key).startswith("⟨")
                   else _id_part(key)))
    if value is None:
        return "NONE"
    return str(value)


def _key(name: str) -> str:
    return name if _IDENTIFIER.fullmatch(name) else _bracketed(name)
