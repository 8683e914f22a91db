"""A table's records read a page at a time, by record range."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from vector_sync.sources.surrealdb.ids import record_literal, record_string

Query = Callable[[str, dict[str, Any]], Any]  # SurrealQL and its variables ($tb is given)


def pages(query: Query, fields: str, where: str, size: int) -> Iterator[list[dict[str, Any]]]:
    """The table's records matching `where` (a WHERE clause or ""), `fields` of each (with
    `id`), `size` at a time: the SDK holds a whole answer, so one SELECT of the table would
    hold every record. Each page after the first starts past the last id seen, as a record
    range (`type::thing($tb, $after>..)`), which the engine reads from the table's key
    order; neither START (it skips by reading) nor `WHERE id > $after` (it scans the whole
    table) would. A range also keeps a page in key order even where an index could serve
    the filter. A page shorter than `size` is the last: the engine scans until LIMIT
    records match."""
    after = None
    while True:
        # the SDK cannot send every id kind as a range bound (a UUID, a duration): those
        # are written out, as record_literal() quotes them (the table is an identifier)
        bound = None if after is None else after.id
        start = f"type::thing($tb, {'..' if after is None else '$after>..'})" \
            if bound is None or isinstance(bound, int | str) \
            else f"{record_literal(record_string(after))}>.."
        page = query(f"SELECT {fields} FROM {start}{where} LIMIT {size}",
                     {"after": bound if isinstance(bound, int | str) else None})
        if page:
            yield page
        if len(page) < size:
            return
        after = page[-1]["id"]
