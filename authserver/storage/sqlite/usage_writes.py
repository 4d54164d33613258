"""SQLite: a usage flush as one ``INSERT ... SELECT FROM json_each(?)`` per table.

Python's sqlite3 takes the GIL back after every row of an executemany. Behind a busy event loop each of
those waits up to the interpreter's switch interval, so a flush of 10,000 clients took 3-15 s instead of
0.1 s, holding the database's write lock all that time (a GIL convoy; the p99 of a 10,000-client benchmark
was 0.5 s). Here the rows go as one JSON text: each statement is one step of SQLite's, run with the GIL
released, and the event loop's part is one ``orjson.dumps``. The upserts are the ones every store uses
(``sql_store.usage_upserts``); only where the rows come from differs.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import bindparam, func, select, true
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from authserver.storage.sql_store import usage_upserts
from authserver.storage.sqlite.token_writes import stored
from authserver.storage.tables import client_last_use, client_usage

_USAGE_COLUMNS = ("client_id", "hour", "tokens", "errors")
_LAST_USE_COLUMNS = ("client_id", "last_token_at", "last_error", "last_error_at")


def _from_json(table: Any, columns: tuple[str, ...]) -> Any:
    """INSERT INTO ``table`` (``columns``) of the rows of the JSON array of arrays bound as ``rows``."""
    rows = func.json_each(bindparam("rows")).table_valued("value")
    fields = [func.json_extract(rows.c.value, f"$[{index}]") for index in range(len(columns))]
    # WHERE true: SQLite needs it to parse an upsert of an INSERT ... SELECT (sqlite.org/lang_upsert.html).
    return sqlite.insert(table).from_select(list(columns), select(*fields).where(true()))


_ADD_USAGE, _KEEP_LAST_USE = usage_upserts(
    _from_json(client_usage, _USAGE_COLUMNS), _from_json(client_last_use, _LAST_USE_COLUMNS)
)


# Rows converted between two turns of the event loop: a few milliseconds each.
_ROWS_PER_TURN = 1000


async def _json_rows(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    """The rows as one JSON array of arrays, timestamps in SQLAlchemy's SQLite storage format (what a bound
    ``DateTime`` would have stored, so that stored times keep comparing as text)."""
    texts: dict[datetime, str] = {}  # a flush's rows share their hours

    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            text = texts.get(value)
            if text is None:
                text = texts[value] = stored(value)
            return text
        return value

    arrays: list[list[Any]] = []
    for start in range(0, len(rows), _ROWS_PER_TURN):
        if start:
            await asyncio.sleep(0)
        arrays += [[plain(row[column]) for column in columns] for row in rows[start : start + _ROWS_PER_TURN]]
    return orjson.dumps(arrays).decode()


async def write_usage(engine: AsyncEngine, hourly: list[dict[str, Any]], last: list[dict[str, Any]]) -> None:
    usage, last_use = await _json_rows(hourly, _USAGE_COLUMNS), await _json_rows(last, _LAST_USE_COLUMNS)
    async with engine.begin() as connection:  # the write lock from here to the commit: two statements
        await connection.execute(_ADD_USAGE, {"rows": usage})
        await connection.execute(_KEEP_LAST_USE, {"rows": last_use})
