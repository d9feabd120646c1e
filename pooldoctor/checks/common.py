"""Small helpers shared by checks: app labels, terminate/cancel statements, timeout suggestions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from psycopg import sql

from pooldoctor.checks.signals import LogSignal, identify_app, instance_label
from pooldoctor.evidence import Evidence
from pooldoctor.findings import Finding, Severity

MAX_STATEMENTS = 10  # pg_terminate/pg_cancel calls spelled out before pointing at a query instead
NICE_TIMEOUTS = (60, 120, 300, 600, 900, 1800, 3600)  # round suggestions to values people set
IDLE_TX_TIMEOUT_FACTOR = 2.0  # a backstop twice the longest legitimate idle-in-transaction age


def app_label(evidence: Evidence) -> str:
    """Short name of the app: its application_name or role, else its first pool endpoint."""
    app = identify_app(evidence.postgres)
    if app is not None:
        return app.short
    for instance in evidence.pools:
        return instance_label(instance)
    return "app"


def backend_calls(function: str, pids: Sequence[int]) -> str:
    """`SELECT pg_terminate_backend(4242); ...` for up to MAX_STATEMENTS pids."""
    calls = " ".join(f"SELECT {function}({pid});" for pid in list(pids)[:MAX_STATEMENTS])
    if len(pids) > MAX_STATEMENTS:
        calls += f" (and {len(pids) - MAX_STATEMENTS} more pids listed in the evidence)"
    return calls


def nice_timeout(seconds: float) -> int:
    """Round a suggested timeout up to a conventional value between 1 min and 1 h."""
    for value in NICE_TIMEOUTS:
        if seconds <= value:
            return value
    return NICE_TIMEOUTS[-1]


def pg_interval(seconds: int) -> str:
    """'5min' / '90s' / '1h' as PostgreSQL accepts in SET."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}min"
    return f"{seconds}s"


def idle_tx_timeout_suggestion(legitimate_ages: Sequence[float]) -> int:
    """A backstop above the idle-in-transaction ages the app legitimately shows."""
    longest = max(legitimate_ages, default=0.0)
    return nice_timeout(math.ceil(longest * IDLE_TX_TIMEOUT_FACTOR))


def sql_identifier(name: str) -> str:
    """A name from outside (a role, a database) quoted as a PostgreSQL identifier."""
    return sql.Identifier(name.replace("\x00", "")).as_string(None)


def sql_literal(value: str) -> str:
    """A value from outside quoted as a PostgreSQL string literal."""
    return sql.Literal(value.replace("\x00", "")).as_string(None)


def alter_role(role: str | None, setting: str, seconds: int) -> str:
    """`ALTER ROLE "app" SET setting = '5min';` with the role quoted by psycopg's rules."""
    target = sql_identifier(role) if role else "<app role>"
    return f"ALTER ROLE {target} SET {setting} = {sql_literal(pg_interval(seconds))};"


HISTORY_CONFIDENCE = 0.3  # an old burst is context for the timeline, not the current cause


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
        return Finding(
            id=f"{check}:{label}",
            check=check,
            severity=severity,
            confidence=round(min(confidence, 0.95), 2),
            title=title,
            summary=summary,
            runbook=check,
            evidence=facts,
            remediation=tuple(remediation),
        )
    return Finding(
        id=f"{check}:{label}",
        check=check,
        severity=Severity.INFO,
        confidence=round(HISTORY_CONFIDENCE * signal.weight, 2),
        title=f"{title} (earlier; history)",
        summary=summary,
        runbook=check,
        evidence=facts,
        remediation=tuple(remediation),
    )
