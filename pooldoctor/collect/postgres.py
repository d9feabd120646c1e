"""PostgreSQL collector: one bounded read-only connection, settings and limits, activity samples."""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import DictRow, dict_row

from pooldoctor.collect.dsn import InvalidDsnError, normalize_dsn
from pooldoctor.collect.probe import FINISH_WAIT_SECONDS, SingleConnectionProbe
from pooldoctor.collect.sql import load_fragment, load_query, shorten_query
from pooldoctor.durations import format_duration
from pooldoctor.evidence import (
    ActivitySample,
    Backend,
    ConnectFailure,
    ConnectionLimit,
    PostgresEvidence,
    SourceState,
    SourceStatus,
)
from pooldoctor.redact import dsn_secrets, redact_dsn, scrub_secrets

APPLICATION_NAME = "pooldoctor"
# libpq ignores a connect_timeout below 2 s (it raises it to 2) and takes whole seconds.
MIN_CONNECT_TIMEOUT_SECONDS = 2
# Our own bound on connecting (DNS, several hosts/addresses): the timeout plus a little, so that
# libpq's own, more precise, error wins whenever it arrives in time.
CONNECT_GRACE_SECONDS = 0.5
# pooldoctor only reads; on a sick server it must never queue behind DDL or a long lock.
LOCK_TIMEOUT_MS = 500
# Backstop only: the session is autocommit, so it is never idle in a transaction.
IDLE_IN_TRANSACTION_TIMEOUT_MS = 10_000
# Transfer at most this much query text per backend; redaction shrinks it before the final cut.
QUERY_FETCH_CHARS = 2_000
QUERY_CHARS = 400
# How long finish() waits for a sample still running (after cancelling it) before giving up.
HIDDEN_QUERY = "<insufficient privilege>"
WAITSTART_SINCE = 140000  # pg_locks.waitstart
RESERVED_ROLES_SINCE = 160000  # reserved_connections and pg_use_reserved_connections

SETTING_NAMES = (
    "max_connections",
    "superuser_reserved_connections",
    "reserved_connections",
    "statement_timeout",
    "idle_in_transaction_session_timeout",
    "idle_session_timeout",
    "lock_timeout",
    "tcp_keepalives_idle",
    "tcp_keepalives_interval",
    "tcp_keepalives_count",
    "deadlock_timeout",
    "default_transaction_read_only",
    "log_lock_waits",
    "server_version",
)
TIME_UNITS = frozenset({"us", "ms", "s", "min", "h", "d"})

# (category, SQLSTATE, patterns in the lowercased message) in match order: server messages first.
_FAILURE_PATTERNS: tuple[tuple[str, str | None, tuple[str, ...]], ...] = (
    ("role_connection_limit", "53300", ("too many connections for role",)),
    ("database_connection_limit", "53300", ("too many connections for database",)),
    ("reserved_slots", "53300", ("remaining connection slots are reserved",)),
    ("too_many_clients", "53300", ("too many clients already",)),
    ("authentication", "28P01", ("password authentication failed",)),
    (
        "authentication",
        "28000",
        ("no pg_hba.conf entry", "is not permitted to log in", "authentication failed"),
    ),
    ("authentication", None, ("no password supplied",)),
    ("permission_denied", "42501", ("permission denied for database",)),
    (
        "cannot_connect_now",
        "57P03",
        (
            "the database system is starting up",
            "the database system is shutting down",
            "the database system is in recovery mode",
            "the database system is not yet accepting connections",
            "the database system is not accepting connections",
        ),
    ),
    ("timeout", None, ("timeout expired",)),
    ("refused", None, ("connection refused",)),
    (
        "dns",
        None,
        (
            "could not translate host name",
            "failed to resolve host",
            "name or service not known",
            "nodename nor servname",
            "temporary failure in name resolution",
        ),
    ),
)
_DATABASE_MISSING = re.compile(r'database ".*" does not exist')
_ROLE_MISSING = re.compile(r'role ".*" does not exist')
_SQLSTATE_CATEGORIES = {
    "28P01": "authentication",
    "28000": "authentication",
    "3D000": "database_missing",
    "57P03": "cannot_connect_now",
    "42501": "permission_denied",
    "53300": "too_many_clients",
}


def classify_connect_error(message: str, sqlstate: str | None = None) -> ConnectFailure:
    """Name why a connection attempt failed, from its SQLSTATE or, lacking one, its text."""
    lowered = message.lower()
    for category, code, patterns in _FAILURE_PATTERNS:
        consistent = sqlstate is None or code is None or sqlstate == code
        if consistent and any(pattern in lowered for pattern in patterns):
            return ConnectFailure(category, message, sqlstate or code)
    if _DATABASE_MISSING.search(lowered):
        return ConnectFailure("database_missing", message, sqlstate or "3D000")
    if _ROLE_MISSING.search(lowered):
        return ConnectFailure("authentication", message, sqlstate or "28000")
    if sqlstate in _SQLSTATE_CATEGORIES:
        return ConnectFailure(_SQLSTATE_CATEGORIES[sqlstate], message, sqlstate)
    return ConnectFailure("other", message, sqlstate)


def connect_failure_reason(failure: ConnectFailure) -> str:
    """The server's or client's own words, without the `connection to server at ...` preamble."""
    text = failure.message
    for marker in ("FATAL:", "failed:"):
        if marker in text:
            text = text.rsplit(marker, 1)[1]
            break
    reason = text.split(" Is the server running")[0].strip()
    return f"{reason} ({failure.sqlstate})" if failure.sqlstate else reason


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _error_text(exc: BaseException) -> str:
    text = _one_line(str(exc)) or type(exc).__name__
    sqlstate = getattr(exc, "sqlstate", None)
    return f"{text} ({sqlstate})" if sqlstate else text


def _connect_timeout_seconds(timeout: float) -> int:
    return max(MIN_CONNECT_TIMEOUT_SECONDS, math.ceil(timeout))


class _ConnectAttempt:
    """psycopg.connect() in a daemon thread, so the caller can stop waiting at its own bound."""

    def __init__(self, conninfo: str, timeout: float) -> None:
        self._conninfo = conninfo
        self._timeout = timeout
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._abandoned = False
        self.connection: psycopg.Connection[DictRow] | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        threading.Thread(target=self._run, name="pooldoctor-connect", daemon=True).start()

    def _run(self) -> None:
        try:
            connection = psycopg.connect(
                self._conninfo,
                autocommit=True,
                prepare_threshold=None,
                row_factory=dict_row,
                application_name=APPLICATION_NAME,
                connect_timeout=_connect_timeout_seconds(self._timeout),
            )
        except Exception as exc:  # handed over to the caller, which records it as evidence
            self.error = exc
        else:
            with self._lock:
                if self._abandoned:
                    connection.close()
                else:
                    self.connection = connection
        finally:
            self._done.set()

    def wait(self, seconds: float) -> bool:
        """True when the attempt finished in time; otherwise it is abandoned (and cleaned up)."""
        self._done.wait(seconds)
        with self._lock:
            if self._done.is_set() or self.connection is not None:
                return True
            self._abandoned = True
            return False


def _as_utc(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC) if moment is not None else None


def _setting_value(value: str, unit: str | None) -> str:
    return f"{value}{unit}" if unit in TIME_UNITS else value


def _backend(row: Mapping[str, Any], redact_literals: bool) -> Backend:
    raw_query: str | None = row["query"]
    hidden = raw_query == HIDDEN_QUERY
    query = None
    if raw_query and not hidden:
        query = shorten_query(raw_query, QUERY_CHARS, redact=redact_literals)
    return Backend(
        pid=row["pid"],
        backend_type=row["backend_type"],
        usename=row["usename"],
        datname=row["datname"],
        application_name=row["application_name"] or None,
        client_addr=row["client_addr"],
        state=row["state"],
        backend_start=_as_utc(row["backend_start"]),
        xact_start=_as_utc(row["xact_start"]),
        query_start=_as_utc(row["query_start"]),
        state_change=_as_utc(row["state_change"]),
        wait_event_type=row["wait_event_type"],
        wait_event=row["wait_event"],
        blocking_pids=tuple(row["blocking_pids"] or ()),
        query=query,
        query_hidden=hidden,
        lock_wait_start=_as_utc(row["lock_wait_start"]),
    )


class PostgresProbe(SingleConnectionProbe[PostgresEvidence]):
    """pooldoctor's single connection to PostgreSQL and everything it saw through it.

    Built by `open_postgres`. `sample()` runs in a worker thread; `finish()` closes. No method
    raises: failures become `connect_failure` or `errors` in the evidence.
    """

    def __init__(self, target: str, timeout: float, redact_literals: bool = True) -> None:
        self.timeout = timeout
        self.redact_literals = redact_literals
        self.started_at = datetime.now(UTC)
        self.finished_at: datetime | None = None
        self.facts = PostgresEvidence(target)  # read once: connection, server, settings, limits
        self._samples: list[ActivitySample] = []
        self._attempts = 0
        self._errors: list[str] = []
        self._connection: psycopg.Connection[DictRow] | None = None
        self._broken = False
        self._busy = threading.Lock()
        self._evidence: PostgresEvidence | None = None

    @property
    def backend_pid(self) -> int | None:
        """The pid of pooldoctor's own backend, while connected."""
        connection = self._connection
        if connection is None or connection.closed:
            return None
        return connection.info.backend_pid

    # -- opening -------------------------------------------------------------------------

    def _open(self, dsn: str) -> None:
        secrets = dsn_secrets(dsn)
        try:
            conninfo = normalize_dsn(dsn)
        except InvalidDsnError as exc:
            self.facts = replace(
                self.facts, connect_failure=ConnectFailure("invalid_dsn", str(exc))
            )
            return
        attempt = _ConnectAttempt(conninfo, self.timeout)
        began = time.monotonic()
        attempt.start()
        if not attempt.wait(self.timeout + CONNECT_GRACE_SECONDS):
            message = f"no connection within {self.timeout:g}s (connect timeout)"
            self.facts = replace(self.facts, connect_failure=ConnectFailure("timeout", message))
            return
        if attempt.connection is None:
            error = attempt.error or RuntimeError("connection attempt failed")
            message = scrub_secrets(_one_line(str(error)) or type(error).__name__, secrets)
            failure = classify_connect_error(message, getattr(error, "sqlstate", None))
            self.facts = replace(self.facts, connect_failure=failure)
            return
        self.facts = replace(self.facts, connect_seconds=time.monotonic() - began)
        self._connection = attempt.connection
        self._run_once("session setup", self._configure_session)
        if self._errors:  # fail closed: no read-only guarantee or timeouts, so no queries
            self._broken = True
            self._errors.append("session setup failed: not sampling without read-only and timeouts")
            self._close()
            return
        self._run_once("server info", self._read_server_info)
        self._run_once("settings", self._read_settings)
        self._run_once("connection limits", self._read_limits)
        if self._version_at_least(RESERVED_ROLES_SINCE):
            self._run_once("reserved connection roles", self._read_reserved_roles)

    def _query(
        self,
        name: str,
        params: Mapping[str, object] | None = None,
        parts: Mapping[str, sql.Composable] | None = None,
    ) -> list[DictRow]:
        assert self._connection is not None
        query = load_query(name)
        statement = query.format(**parts) if parts else query
        return self._connection.execute(statement, params).fetchall()

    def _version_at_least(self, version_num: int) -> bool:
        server = self.facts.server_version_num
        return server is not None and server >= version_num

    def _configure_session(self) -> None:
        statement_timeout_ms = max(1, round(self.timeout * 1000))
        self._query(
            "session_setup",
            {
                "statement_timeout": str(statement_timeout_ms),
                "lock_timeout": str(LOCK_TIMEOUT_MS),
                "idle_in_transaction_timeout": str(IDLE_IN_TRANSACTION_TIMEOUT_MS),
            },
        )

    def _read_server_info(self) -> None:
        row = self._query("server_info")[0]
        self.facts = replace(
            self.facts,
            server_version=row["server_version"],
            server_version_num=row["server_version_num"],
            current_user=row["user_name"],
            is_superuser=row["is_superuser"],
            can_read_all_stats=row["can_read_all_stats"],
            in_recovery=row["in_recovery"],
        )

    def _read_settings(self) -> None:
        rows = self._query("settings", {"names": list(SETTING_NAMES)})
        settings = {r["name"]: _setting_value(r["reset_val"], r["unit"]) for r in rows}
        self.facts = replace(self.facts, settings=settings)

    def _read_limits(self) -> None:
        limits = tuple(
            ConnectionLimit(r["kind"], r["name"], r["connection_limit"], r["current_count"])
            for r in self._query("connection_limits")
        )
        self.facts = replace(self.facts, limits=limits)

    def _read_reserved_roles(self) -> None:
        roles = tuple(r["rolname"] for r in self._query("reserved_roles"))
        self.facts = replace(self.facts, reserved_connection_roles=roles)

    def _activity_parts(self) -> dict[str, sql.Composable]:
        if self._version_at_least(WAITSTART_SINCE):
            return {"lock_wait_start": load_fragment("lock_wait_start")}
        return {"lock_wait_start": sql.SQL("NULL::timestamptz")}

    def _run_once(self, what: str, step: Callable[[], None]) -> None:
        if self._connection is None or self._broken:
            return
        try:
            step()
        except psycopg.Error as exc:
            self._record_error(what, exc)

    def _record_error(self, what: str, exc: psycopg.Error) -> None:
        connection = self._connection
        if connection is not None and (connection.broken or connection.closed):
            self._broken = True
            self._errors.append(f"{what}: connection lost: {_error_text(exc)}")
        else:
            self._errors.append(f"{what}: {_error_text(exc)}")

    # -- sampling ------------------------------------------------------------------------

    def _sample_round(self) -> None:
        """Append one pg_stat_activity snapshot."""
        self._attempts += 1
        number = self._attempts
        try:
            rows = self._query(
                "activity", {"query_chars": QUERY_FETCH_CHARS}, self._activity_parts()
            )
        except psycopg.Error as exc:
            self._record_error(f"sample {number}", exc)
            return
        self._samples.append(
            ActivitySample(
                at=rows[0]["sampled_at"].astimezone(UTC),
                backends=tuple(
                    _backend(row, self.redact_literals) for row in rows if row["pid"] is not None
                ),
            )
        )

    # -- closing -------------------------------------------------------------------------

    def _failure_word(self) -> str | None:
        failure = self.facts.connect_failure
        return failure.category if failure is not None else None

    def _usable(self) -> bool:
        connection = self._connection
        return connection is not None and not self._broken and not connection.closed

    def _last_round_failed(self) -> bool:
        return self._errors[-1].startswith(f"sample {len(self._samples) + 1}")

    def snapshot(self, last: int | None = None) -> PostgresEvidence:
        samples = tuple(self._samples)
        if last is not None:
            samples = samples[-last:]
        return replace(
            self.facts,
            settings=dict(self.facts.settings),
            samples=samples,
            errors=tuple(self._errors),
            hidden_per_sample=tuple(sum(1 for b in s.backends if b.query_hidden) for s in samples),
            hidden_roles=tuple(
                sorted({b.usename or "?" for s in samples for b in s.backends if b.query_hidden})
            ),
        )

    def _wait_idle(self, connection: psycopg.Connection[DictRow]) -> bool:
        """Half the wait for a running sample, then cancel its query and wait the other half."""
        if self._busy.acquire(timeout=FINISH_WAIT_SECONDS / 2):
            return True
        try:
            connection.cancel_safe(timeout=FINISH_WAIT_SECONDS / 2)
        except psycopg.Error as exc:
            self._errors.append(f"cancel running sample: {_error_text(exc)}")
        return self._busy.acquire(timeout=FINISH_WAIT_SECONDS / 2)

    def status(self) -> SourceStatus:
        """One line on how the PostgreSQL source went."""
        failure = self.facts.connect_failure
        if failure is not None:
            detail = f"{failure.category}: {connect_failure_reason(failure)}"
            state = SourceState.ERROR
        else:
            count = len(self._samples)
            detail = (
                f"connected in {format_duration(self.facts.connect_seconds or 0)} as "
                f"{self.facts.current_user or '?'}, "
                f"{count} sample{'' if count == 1 else 's'}"
            )
            if self._errors:
                detail += f"; {len(self._errors)} error(s), last: {self._errors[-1]}"
            state = SourceState.ERROR if self._errors and not self._samples else SourceState.OK
        return SourceStatus(
            self.facts.target or "postgres",
            "postgres",
            state,
            detail,
            self.started_at,
            self.finished_at,
        )


def open_postgres(dsn: str, timeout: float, *, redact_literals: bool = True) -> PostgresProbe:
    """Open pooldoctor's one read-only connection and read settings and limits; never raises."""
    probe = PostgresProbe(redact_dsn(dsn), timeout, redact_literals)
    probe._open(dsn)
    return probe
