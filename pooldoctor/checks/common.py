"""Small helpers shared by checks: app labels, terminate/cancel statements, timeout suggestions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pooldoctor.checks.signals import LogSignal, identify_app, instance_label
from pooldoctor.evidence import Evidence
from pooldoctor.findings import Finding, Severity

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


NEW_SESSIONS_ONLY = (
    "(reaches new sessions only: open connections keep the old value until they reconnect)"
)


def alter_role(role: str | None, setting: str, seconds: int) -> str:
    target = f'"{role}"' if role else "<app role>"
    return f"ALTER ROLE {target} SET {setting} = '{pg_interval(seconds)}'; {NEW_SESSIONS_ONLY}"


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
