"""PgBouncer collector: one admin-console connection, rounds of SHOW POOLS/STATS/CLIENTS/...."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import DictRow

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
from pooldoctor.redact import dsn_secrets, redact_dsn, scrub_secrets

ADMIN_DATABASE = "pgbouncer"
MAX_LISTED_CONNECTIONS = 500  # SHOW CLIENTS/SERVERS rows kept per sample; totals are kept too
FINISH_WAIT_SECONDS = 2.0
SHOW_COMMANDS = ("POOLS", "DATABASES", "CLIENTS", "SERVERS", "STATS", "CONFIG", "USERS")


class ShowTimeout(Exception):
    """A SHOW got no answer before the round's deadline; the connection was cut."""


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _seconds(row: Mapping[str, Any], whole: str, micros: str) -> float:
    return float(_int(row.get(whole)) or 0) + float(_int(row.get(micros)) or 0) / 1e6


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
        port=_int(row.get("port")),
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
        port=_int(row.get("port")),
        connect_time=_text(row.get("connect_time")),
        request_time=_text(row.get("request_time")),
        wait_seconds=_seconds(row, "wait", "wait_us"),
        ptr=_text(row.get("ptr")),
        link=_text(row.get("link")),
        application_name=_text(row.get("application_name")),
    )


def stats_from_rows(rows: list[DictRow]) -> dict[str, dict[str, float]]:
    """SHOW STATS as database -> numeric column -> value."""
    stats: dict[str, dict[str, float]] = {}
    for row in rows:
        stats[str(row["database"])] = {
            key: float(value)
            for key, value in row.items()
            if key != "database" and isinstance(value, int | float | Decimal)
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

    def _open(self, dsn: str) -> None:
        secrets = dsn_secrets(dsn)
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
            self.version = str(self._show("VERSION", time.monotonic() + self.timeout)[0]["version"])
        except (psycopg.Error, ShowTimeout, IndexError, KeyError) as exc:
            self._errors.append(f"SHOW VERSION: {' '.join(str(exc).split())}")

    def _show(self, what: str, deadline: float) -> list[DictRow]:
        """Run one SHOW, cut off at `deadline`.

        The admin console has no statement_timeout, so the bound is on the socket: past the
        deadline a timer shuts the connection's socket down and the blocked read fails.
        """
        connection = self._connection
        assert connection is not None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ShowTimeout(f"no time left in the round's {self.timeout:g}s")
        cut = threading.Event()
        timer = threading.Timer(remaining, _cut_connection, args=(connection, cut))
        timer.daemon = True
        timer.start()
        try:
            return connection.execute(f"SHOW {what}".encode()).fetchall()
        except psycopg.OperationalError:
            if cut.is_set():
                raise ShowTimeout(
                    f"no answer within {self.timeout:g}s; connection dropped "
                    "(the admin console has no statement timeout)"
                ) from None
            raise
        finally:
            timer.cancel()

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
            results: dict[str, list[DictRow]] = {}
            deadline = time.monotonic() + self.timeout  # the whole round, all SHOWs together
            for what in SHOW_COMMANDS:
                try:
                    results[what] = self._show(what, deadline)
                except (psycopg.Error, ShowTimeout) as exc:
                    self._errors.append(f"SHOW {what}: {' '.join(str(exc).split())}")
                    if not self._usable():
                        return
            self._last_round_errors = len(self._errors) > errors_before
            self._record(at, results)
        finally:
            self._busy.release()

    def _record(self, at: datetime, results: Mapping[str, list[DictRow]]) -> None:
        if "CONFIG" in results:
            self.config = {str(r["key"]): str(r["value"]) for r in results["CONFIG"]}
        if "USERS" in results:
            self.users = {
                str(r["name"]): {k: str(v) for k, v in r.items() if k != "name" and v is not None}
                for r in results["USERS"]
            }
        clients = results.get("CLIENTS", [])
        servers = results.get("SERVERS", [])
        self._samples.append(
            PgBouncerSample(
                at=at,
                pools=tuple(pool_from_row(r) for r in results.get("POOLS", [])),
                databases=tuple(database_from_row(r) for r in results.get("DATABASES", [])),
                clients=tuple(connection_from_row(r) for r in clients[:MAX_LISTED_CONNECTIONS]),
                servers=tuple(connection_from_row(r) for r in servers[:MAX_LISTED_CONNECTIONS]),
                clients_total=len(clients),
                servers_total=len(servers),
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


def _cut_connection(connection: psycopg.Connection[DictRow], cut: threading.Event) -> None:
    """Shut the connection's socket down (through a duplicate descriptor): reads end at once."""
    with contextlib.suppress(OSError, psycopg.Error):
        descriptor = os.dup(connection.fileno())
        cut.set()
        with socket.socket(fileno=descriptor) as duplicate:
            duplicate.shutdown(socket.SHUT_RDWR)


def open_pgbouncer(dsn: str, timeout: float) -> PgBouncerProbe:
    """Connect to PgBouncer's admin console (database `pgbouncer`); never raises."""
    probe = PgBouncerProbe(redact_dsn(dsn), timeout)
    began = time.monotonic()
    probe._open(dsn)
    if probe.connect_failure is None and time.monotonic() - began > probe.timeout:
        probe._errors.append(f"connecting took over {probe.timeout:g}s")
    return probe
