"""One simple-protocol query read row by row under a deadline and a row cap (PgBouncer's admin
console speaks only the simple protocol, and a hostile one may stall or never stop answering)."""

from __future__ import annotations

import selectors
import time
from decimal import Decimal, InvalidOperation
from typing import Any

import psycopg
from psycopg import pq

INT_OIDS = frozenset({20, 21, 23, 26})  # int8, int2, int4, oid
FLOAT_OIDS = frozenset({700, 701})
NUMERIC_OID = 1700


class ConsoleError(Exception):
    """The console answered the query with an error; the connection is still usable."""


class ConsoleFailed(Exception):
    """No usable answer (too slow, too many rows, connection lost); the connection must close."""


class ConsoleTimeout(ConsoleFailed):
    """No complete answer within the time given; the connection must close."""


def _value(raw: bytes | None, oid: int) -> Any:
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace")
    try:
        if oid in INT_OIDS:
            return int(text)
        if oid in FLOAT_OIDS:
            return float(text)
        if oid == NUMERIC_OID:
            return Decimal(text)
    except (ValueError, InvalidOperation):
        return text
    return text


def _row(result: pq.abc.PGresult) -> dict[str, Any]:
    return {
        (result.fname(column) or b"").decode("utf-8", "replace"): _value(
            result.get_value(0, column), result.ftype(column)
        )
        for column in range(result.nfields)
    }


def _wait(pgconn: pq.abc.PGconn, deadline: float, *, write: bool = False) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    event = selectors.EVENT_WRITE if write else selectors.EVENT_READ
    with selectors.DefaultSelector() as selector:  # not select(): descriptors past 1024 exist
        selector.register(pgconn.socket, event)
        if not selector.select(remaining):
            raise TimeoutError


def query_rows(
    pgconn: pq.abc.PGconn, query: bytes, seconds: float, keep: int, max_rows: int
) -> tuple[list[dict[str, Any]], int]:
    """The first `keep` rows of `query` as column -> value, and how many rows there were.

    Raises ConsoleError for an error answer, ConsoleFailed when the answer does not end within
    `seconds`, exceeds `max_rows` rows or the connection fails.
    """
    deadline = time.monotonic() + seconds
    rows: list[dict[str, Any]] = []
    total = 0
    error: str | None = None
    try:
        pgconn.send_query(query)
        pgconn.set_single_row_mode()
        while pgconn.flush():
            _wait(pgconn, deadline, write=True)
        while True:
            while pgconn.is_busy():
                _wait(pgconn, deadline)
                pgconn.consume_input()
            result = pgconn.get_result()
            if result is None:
                break
            if result.status == pq.ExecStatus.SINGLE_TUPLE:
                total += 1
                if total > max_rows:
                    raise ConsoleFailed(f"more than {max_rows} rows; connection dropped")
                if total <= keep:
                    rows.append(_row(result))
            elif result.status == pq.ExecStatus.FATAL_ERROR and error is None:
                primary = result.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b""
                error = primary.decode("utf-8", "replace") or "error without a message"
    except TimeoutError:
        raise ConsoleTimeout(f"no answer within {seconds:g}s") from None
    except (psycopg.Error, OSError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ConsoleFailed(f"connection failed: {reason}") from None
    if error is not None:
        raise ConsoleError(error)
    return rows, total
