"""Small helpers shared by checks: terminate/cancel statements, ALTER ROLE, log findings, leaks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from pooldoctor.durations import format_duration
from pooldoctor.findings import Finding, Role, Severity
from pooldoctor.readings import Readings
from pooldoctor.readings.leak import LeakSignature
from pooldoctor.readings.logs import LogSignal
from pooldoctor.readings.pools import UNREPORTED_ORIGIN

NEW_SESSIONS_ONLY = (
    "(reaches new sessions only: open connections keep the old value until they reconnect)"
)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def backend_calls(
    function: str,
    pids: Sequence[int],
    *,
    application_name: str | None = None,
    role: str | None = None,
    states: Sequence[str] = (),
) -> str:
    """One statement that signals exactly the pids seen, re-checked when it runs against the
    app's application_name, role and state, and never the session that runs it."""
    chosen = sorted(set(pids))
    conditions = [f"pid = ANY('{{{','.join(map(str, chosen))}}}'::int[])"]
    if application_name:
        conditions.append(f"application_name = {_literal(application_name)}")
    if role:
        conditions.append(f"usename = {_literal(role)}")
    if states:
        conditions.append(f"state IN ({', '.join(_literal(s) for s in sorted(set(states)))})")
    conditions.append("pid <> pg_backend_pid()")
    return f"SELECT pid, {function}(pid) FROM pg_stat_activity WHERE {' AND '.join(conditions)};"


def pg_interval(seconds: int) -> str:
    """'5min' / '90s' / '1h' as PostgreSQL accepts in SET."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}min"
    return f"{seconds}s"


def sql_identifier(name: str) -> str:
    """A name from outside (a role, a database) quoted as a PostgreSQL identifier."""
    return sql.Identifier(name.replace("\x00", "")).as_string(None)


def sql_literal(value: str) -> str:
    """A value from outside quoted as a PostgreSQL string literal."""
    return sql.Literal(value.replace("\x00", "")).as_string(None)


def alter_role(role: str | None, setting: str, seconds: int) -> str:
    """`ALTER ROLE "app" SET setting = '5min';` with the role quoted by psycopg's rules."""
    target = sql_identifier(role) if role else "<app role>"
    value = sql_literal(pg_interval(seconds))
    return f"ALTER ROLE {target} SET {setting} = {value}; {NEW_SESSIONS_ONLY}"


HISTORY_CONFIDENCE = 0.3  # an old burst is context for the timeline, not the current cause
MAX_CONFIDENCE = 0.95  # evidence is never proof: leave room above every finding


def log_finding(
    *,
    check: str,
    label: str,
    signal: LogSignal,
    what: str,
    title: str,
    severity: Severity,
    confidence: float,
    remediation: Sequence[str],
    reasons: Sequence[str] = (),
    evidence: dict[str, Any] | None = None,
) -> Finding | None:
    """A finding from a log signature: current -> `severity`; an old burst -> INFO history."""
    if not signal.seen:
        return None
    summary = "; ".join([signal.describe(what), *reasons])
    facts = {"log": signal.as_evidence(), **(evidence or {})}
    if signal.current:
        return finding(
            check,
            label,
            severity=severity,
            confidence=min(confidence, MAX_CONFIDENCE),
            title=title,
            summary=summary,
            evidence=facts,
            remediation=remediation,
        )
    return finding(
        check,
        label,
        severity=Severity.INFO,
        confidence=HISTORY_CONFIDENCE * signal.weight,
        title=f"{title} (earlier; history)",
        summary=summary,
        evidence=facts,
        remediation=remediation,
    )


def leak_summary(readings: Readings, signature: LeakSignature, *extra: str) -> str:
    """The leak's reasons, and why its counts are lower bounds when the app's sessions were
    hidden from pooldoctor's role."""
    parts = [*signature.reasons, *extra]
    if signature.trend is not None:
        parts.extend(readings.visibility.app_counts_notes(signature.trend.app.label))
    return "; ".join(parts)


def leak_remediation(readings: Readings, signature: LeakSignature) -> list[str]:
    """Least disruptive first: free the leaked backends, reset the pools, fix the code path, and
    the one idle-in-transaction backstop."""
    steps: list[str] = []
    pids = [h.pid for h in signature.stuck]
    trend = signature.trend
    if pids:
        app = trend.app if trend is not None else None
        statement = backend_calls(
            "pg_terminate_backend",
            pids,
            application_name=app.application_name if app else None,
            role=(app.role or app.usename) if app else None,
            states=[h.backend.state for h in signature.stuck if h.backend.state],
        )
        steps.append(
            f"Free the leaked backends now (releases their locks and server slots): {statement}"
        )
    steps.append(
        "Rolling-restart the affected app instances one at a time to reset their pools (the "
        "leak returns at the same rate until the code is fixed)"
    )
    if signature.holder_rows and signature.holder_rows[0]["origin"] != UNREPORTED_ORIGIN:
        top = signature.holder_rows[0]
        finished = any(h.origin == top["origin"] for h in signature.orphaned)
        steps.append(
            f"Fix the code path that keeps connections: {top['origin']} holds {top['count']} "
            f"for up to {format_duration(top['oldest_seconds'])}"
            + (" after its thread finished" if finished else "")
            + "; use `with Session(engine) as session:` / `async with` so every exit path "
            "returns the connection"
        )
    elif signature.extra.get("holds", {}).get("code_paths"):
        path = signature.extra["holds"]["code_paths"][0]
        lag = max(abs(value) for value in path["lag_ms"])
        steps.append(
            f"Fix the error path at {path['app_frame'] or path['message']}: {path['exception']} "
            f"leaves the session open ({path['explains']} of {path['of']} stuck transactions "
            f"began within {format_duration(lag / 1000)} of it being logged); use "
            "`with Session(engine) as session:` so the exception path returns the connection"
        )
    else:
        steps.append(
            "Find the code path: log pool checkout/checkin events with a stack origin "
            "(SQLAlchemy `checkout`/`checkin` events) and close every session with `with`/`async "
            "with`"
        )
    if trend is not None and readings.idle_tx_timeout_missing:
        longest = readings.longest_legitimate_idle_tx
        seen = format_duration(longest) if longest is not None else "none"
        statement = alter_role(
            trend.app.role, "idle_in_transaction_session_timeout", readings.idle_tx_timeout
        )
        steps.append(
            f"Backstop: {statement} (longest legitimate idle in transaction seen: {seen}; the "
            f"leaked ones are {format_duration(signature.stuck[0].age_seconds)} old)"
            if signature.stuck
            else f"Backstop: {statement}"
        )
    return steps


def finding(
    check: str,
    label: str,
    *,
    severity: Severity,
    confidence: float,
    title: str,
    summary: str,
    runbook: str | None = None,
    role: Role = Role.CAUSE,
    evidence: dict[str, Any] | None = None,
    remediation: Sequence[str] = (),
) -> Finding:
    """A finding with the usual identity: id `check:label`, the check's own runbook by default;
    the confidence is rounded to two decimals."""
    return Finding(
        id=f"{check}:{label}",
        check=check,
        severity=severity,
        confidence=round(confidence, 2),
        title=title,
        summary=summary,
        runbook=runbook or check,
        role=role,
        evidence=evidence or {},
        remediation=tuple(remediation),
    )
