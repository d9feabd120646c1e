"""PgBouncer collector: one admin-console connection, rounds of SHOW POOLS/STATS/CLIENTS/...."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import DictRow

from pooldoctor.collect.console import ConsoleError, ConsoleFailed, ConsoleTimeout, query_rows
from pooldoctor.collect.dsn import InvalidDsnError, normalize_dsn
from pooldoctor.collect.postgres import CONNECT_GRACE_SECONDS, _ConnectAttempt
from pooldoctor.evidence import (
    PgBouncerConnection,
    PgBouncerDatabase,
    PgBouncerEvidence,
    PgBouncerPool,
    PgBouncerSample,
    SourceState,
    SourceStatus,
)
from pooldoctor.jsonio import MAX_JSON_NUMBER
from pooldoctor.redact import dsn_secrets, redact_dsn, scrub_secrets

ADMIN_DATABASE = "pgbouncer"
MAX_LISTED_CONNECTIONS = 500  # SHOW CLIENTS/SERVERS rows kept per sample; totals are kept too
# A console answering more rows than this is not a PgBouncer (max_client_conn is far below it).
MAX_SHOW_ROWS = 1_000_000
MAX_TEXT_CHARS = 1024  # names, states, addresses: longer values are cut
FINISH_WAIT_SECONDS = 2.0
# Counts, sizes and ports are small non-negative integers; seconds stay below ten years.
MAX_COUNT = 10_000_000
MAX_SECONDS = 10 * 366 * 86400
MAX_STAT = MAX_JSON_NUMBER
SHOW_COMMANDS = ("POOLS", "DATABASES", "CLIENTS", "SERVERS", "STATS", "CONFIG", "USERS")


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)[:MAX_TEXT_CHARS]


def _int(value: Any, limit: int = MAX_COUNT) -> int | None:
    """A non-negative integer up to `limit`; anything else (negative, huge, not a number) None."""
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if 0 <= number <= limit else None


def _seconds(row: Mapping[str, Any], whole: str, micros: str) -> float:
    seconds = (_int(row.get(whole), MAX_SECONDS) or 0) + (_int(row.get(micros)) or 0) / 1e6
    return min(float(seconds), float(MAX_SECONDS))


def _stat(value: Any) -> float | None:
    if not isinstance(value, int | float | Decimal):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError):
        return None
    return number if math.isfinite(number) and abs(number) <= MAX_STAT else None


# Integer columns of SHOW POOLS/DATABASES/CLIENTS/SERVERS and their upper bounds.
INT_COLUMNS = {
    **dict.fromkeys(
        (
            "cl_active",
            "cl_waiting",
            "sv_active",
            "sv_idle",
            "sv_used",
            "sv_tested",
            "sv_login",
            "maxwait_us",
            "wait_us",
            "pool_size",
            "reserve_pool",
            "max_connections",
            "current_connections",
            "paused",
            "disabled",
        ),
        MAX_COUNT,
    ),
    "port": 65535,
    "maxwait": MAX_SECONDS,
    "wait": MAX_SECONDS,
}


def rejected_values(what: str, rows: Sequence[Mapping[str, Any]]) -> str | None:
    """A note on the integer columns (or SHOW STATS numbers) that are negative, absurdly large
    or not numbers, which are read as absent; None when every value is sane."""
    bad: list[str] = []
    for row in rows:
        for key, value in row.items():
            if what == "STATS":
                wrong = key != "database" and value is not None and _stat(value) is None
                wrong = wrong and isinstance(value, int | float | Decimal)
            else:
                limit = INT_COLUMNS.get(key)
                wrong = limit is not None and value not in (None, "")
                wrong = wrong and _int(value, limit if limit is not None else 0) is None
            if wrong:
                bad.append(f"{key}={str(value)[:20]}")
    if not bad:
        return None
    return f"SHOW {what}: {len(bad)} value(s) out of range or not numbers, e.g. {bad[0]}"


def pool_from_row(row: Mapping[str, Any]) -> PgBouncerPool:
    """A SHOW POOLS row (any PgBouncer version: missing columns read as 0)."""
    return PgBouncerPool(
        database=str(row["database"]),
        user=str(row["user"]),
        cl_active=_int(row.get("cl_active")) or 0,
        cl_waiting=_int(row.get("cl_waiting")) or 0,
        sv_active=_int(row.get("sv_active")) or 0,
        sv_idle=_int(row.get("sv_idle")) or 0,
        sv_used=_int(row.get("sv_used")) or 0,
        sv_tested=_int(row.get("sv_tested")) or 0,
        sv_login=_int(row.get("sv_login")) or 0,
        maxwait_seconds=_seconds(row, "maxwait", "maxwait_us"),
        pool_mode=_text(row.get("pool_mode")),
    )


def database_from_row(row: Mapping[str, Any]) -> PgBouncerDatabase:
    """A SHOW DATABASES row; a 0 max_connections means unlimited and reads as None."""
    return PgBouncerDatabase(
        name=str(row["name"]),
        host=_text(row.get("host")),
        port=_int(row.get("port"), 65535),
        database=_text(row.get("database")),
        force_user=_text(row.get("force_user")),
        pool_size=_int(row.get("pool_size")),
        reserve_pool=_int(row.get("reserve_pool")),
        pool_mode=_text(row.get("pool_mode")),
        max_connections=_int(row.get("max_connections")) or None,
        current_connections=_int(row.get("current_connections")),
        paused=bool(_int(row.get("paused"))),
        disabled=bool(_int(row.get("disabled"))),
    )


def connection_from_row(row: Mapping[str, Any]) -> PgBouncerConnection:
    """A SHOW CLIENTS / SHOW SERVERS row."""
    return PgBouncerConnection(
        user=str(row.get("user") or ""),
        database=str(row.get("database") or ""),
        state=str(row.get("state") or ""),
        addr=_text(row.get("addr")),
        port=_int(row.get("port"), 65535),
        connect_time=_text(row.get("connect_time")),
        request_time=_text(row.get("request_time")),
        wait_seconds=_seconds(row, "wait", "wait_us"),
        ptr=_text(row.get("ptr")),
        link=_text(row.get("link")),
        application_name=_text(row.get("application_name")),
    )


def stats_from_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """SHOW STATS as database -> numeric column -> value (non-finite or absurd values dropped)."""
    stats: dict[str, dict[str, float]] = {}
    for row in rows:
        numbers = {key: _stat(value) for key, value in row.items() if key != "database"}
        stats[str(row["database"])[:MAX_TEXT_CHARS]] = {
            key: number for key, number in numbers.items() if number is not None
        }
    return stats


class PgBouncerProbe:
    """pooldoctor's single admin-console connection to one PgBouncer; no method raises."""

    def __init__(self, target: str, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self.started_at = datetime.now(UTC)
        self.finished_at: datetime | None = None
        self.version: str | None = None
        self.config: dict[str, str] = {}
        self.users: dict[str, dict[str, str]] = {}
        self.connect_failure: str | None = None
        self._samples: list[PgBouncerSample] = []
        self._errors: list[str] = []
        self._connection: psycopg.Connection[DictRow] | None = None
        self._busy = threading.Lock()
        self._last_round_errors = False
        self._evidence: PgBouncerEvidence | None = None
        self._secrets: set[str] = set()
        self.totals: dict[str, int] = {}

    def _error(self, what: str, exc: BaseException) -> None:
        message = " ".join(str(exc).split()) or type(exc).__name__
        self._errors.append(scrub_secrets(f"SHOW {what}: {message}", self._secrets))

    def _open(self, dsn: str) -> None:
        secrets = self._secrets = dsn_secrets(dsn)
        try:
            conninfo = normalize_dsn(dsn)
        except InvalidDsnError as exc:
            self.connect_failure = str(exc)
            return
        attempt = _ConnectAttempt(conninfo, self.timeout)
        attempt.start()
        if not attempt.wait(self.timeout + CONNECT_GRACE_SECONDS):
            self.connect_failure = f"no connection within {self.timeout:g}s (connect timeout)"
            return
        if attempt.connection is None:
            error = attempt.error or RuntimeError("connection attempt failed")
            message = " ".join(str(error).split()) or type(error).__name__
            self.connect_failure = scrub_secrets(message, secrets)
            return
        self._connection = attempt.connection
        try:
            deadline = time.monotonic() + self.timeout
            self.version = _text(self._show("VERSION", deadline)[0]["version"])
        except (ConsoleError, ConsoleFailed, IndexError, KeyError) as exc:
            self._error("VERSION", exc)

    def _show(self, what: str, deadline: float, keep: int = MAX_SHOW_ROWS) -> list[dict[str, Any]]:
        """The first `keep` rows of `SHOW what` (all rows are counted in `totals`), read by
        `deadline` (time.monotonic()).

        The admin console has no statement_timeout, so the bound is client-side: a console that
        has not answered by the deadline, or answers more than MAX_SHOW_ROWS rows, has its
        connection closed (ConsoleFailed).
        """
        connection = self._connection
        assert connection is not None
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise ConsoleTimeout
            rows, total = query_rows(
                connection.pgconn, f"SHOW {what}".encode(), remaining, keep, MAX_SHOW_ROWS
            )
        except ConsoleTimeout:
            connection.close()
            raise ConsoleFailed(
                f"no answer within {self.timeout:g}s; connection dropped "
                "(the admin console has no statement timeout)"
            ) from None
        except ConsoleFailed:
            connection.close()
            raise
        self.totals[what] = total
        return rows

    def _usable(self) -> bool:
        connection = self._connection
        return connection is not None and not connection.closed and not connection.broken

    def sample(self) -> None:
        """Append one round of SHOW commands; a failing command is recorded, the rest still run."""
        if not self._busy.acquire(blocking=False):
            self._errors.append("sample skipped: the previous sample is still running")
            return
        try:
            if not self._usable():
                return
            at = datetime.now(UTC)
            errors_before = len(self._errors)
            results: dict[str, list[dict[str, Any]]] = {}
            deadline = time.monotonic() + self.timeout  # the whole round, all SHOWs together
            for what in SHOW_COMMANDS:
                listed = what in ("CLIENTS", "SERVERS")
                try:
                    results[what] = self._show(
                        what, deadline, MAX_LISTED_CONNECTIONS if listed else MAX_SHOW_ROWS
                    )
                except (ConsoleError, ConsoleFailed) as exc:
                    self._error(what, exc)
                    if not self._usable():
                        return
            for what, rows in results.items():
                note = rejected_values(what, rows)
                if note is not None:
                    self._errors.append(note)
            self._last_round_errors = len(self._errors) > errors_before
            self._record(at, results)
        finally:
            self._busy.release()

    def _record(self, at: datetime, results: Mapping[str, list[dict[str, Any]]]) -> None:
        if "CONFIG" in results:
            self.config = {
                str(r["key"])[:MAX_TEXT_CHARS]: str(r["value"])[:MAX_TEXT_CHARS]
                for r in results["CONFIG"]
            }
        if "USERS" in results:
            self.users = {
                str(r["name"])[:MAX_TEXT_CHARS]: {
                    k: str(v)[:MAX_TEXT_CHARS]
                    for k, v in r.items()
                    if k != "name" and v is not None
                }
                for r in results["USERS"]
            }
        clients = results.get("CLIENTS", [])
        servers = results.get("SERVERS", [])
        self._samples.append(
            PgBouncerSample(
                at=at,
                pools=tuple(pool_from_row(r) for r in results.get("POOLS", [])),
                databases=tuple(database_from_row(r) for r in results.get("DATABASES", [])),
                clients=tuple(connection_from_row(r) for r in clients),
                servers=tuple(connection_from_row(r) for r in servers),
                clients_total=self.totals.get("CLIENTS", 0) if "CLIENTS" in results else 0,
                servers_total=self.totals.get("SERVERS", 0) if "SERVERS" in results else 0,
                stats=stats_from_rows(results.get("STATS", [])),
            )
        )

    def round_outcome(self) -> str:
        """How the latest round went, in a word or a short reason (for progress lines)."""
        if self.connect_failure is not None:
            return "error: not connected (not retried)"
        if not self._usable():
            return "error: connection lost"
        if self._errors and self._last_round_errors:
            return f"error: {self._errors[-1]}"
        return "ok"

    def finish(self) -> PgBouncerEvidence:
        """Close the connection (once) and return everything collected."""
        if self._evidence is None:
            self._close()
            self.finished_at = datetime.now(UTC)
            self._evidence = self.snapshot()
        return self._evidence

    def snapshot(self, last: int | None = None) -> PgBouncerEvidence:
        """Everything collected so far (only the `last` samples if given), connection kept open."""
        samples = tuple(self._samples)
        return PgBouncerEvidence(
            target=self.target,
            version=self.version,
            config=dict(self.config),
            users=dict(self.users),
            samples=samples if last is None else samples[-last:],
            connect_failure=self.connect_failure,
            errors=tuple(self._errors),
        )

    def keep_last(self, count: int) -> None:
        """Forget all but the latest `count` samples and errors (bounded memory when watching)."""
        del self._samples[:-count]
        del self._errors[:-count]

    def _close(self) -> None:
        connection = self._connection
        if connection is None or connection.closed:
            return
        if not self._busy.acquire(timeout=FINISH_WAIT_SECONDS):
            self._errors.append("a sample did not finish; its connection closes at exit")
            return
        try:
            connection.close()
        finally:
            self._busy.release()

    def status(self) -> SourceStatus:
        """One line on how this PgBouncer source went."""
        if self.connect_failure is not None:
            state, detail = SourceState.ERROR, self.connect_failure
        else:
            count = len(self._samples)
            detail = f"{self.version or 'PgBouncer'}, {count} sample{'' if count == 1 else 's'}"
            if self._errors:
                detail += f"; {len(self._errors)} error(s), last: {self._errors[-1]}"
            state = SourceState.OK if self._samples else SourceState.ERROR
        return SourceStatus(
            self.target, "pgbouncer", state, detail, self.started_at, self.finished_at
        )


def open_pgbouncer(dsn: str, timeout: float) -> PgBouncerProbe:
    """Connect to PgBouncer's admin console (database `pgbouncer`); never raises."""
    probe = PgBouncerProbe(redact_dsn(dsn), timeout)
    began = time.monotonic()
    probe._open(dsn)
    if probe.connect_failure is None and time.monotonic() - began > probe.timeout:
        probe._errors.append(f"connecting took over {probe.timeout:g}s")
    return probe
