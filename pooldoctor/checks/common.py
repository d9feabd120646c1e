"""Small helpers shared by checks: terminate/cancel statements, ALTER ROLE, log findings, leaks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pooldoctor.durations import format_duration
from pooldoctor.findings import Finding, Role, Severity
from pooldoctor.readings import Readings
from pooldoctor.readings.leak import LeakSignature
from pooldoctor.readings.logs import LogSignal
from pooldoctor.readings.pools import UNREPORTED_ORIGIN

MAX_STATEMENTS = 10  # pg_terminate/pg_cancel calls spelled out before pointing at a query instead


def backend_calls(function: str, pids: Sequence[int]) -> str:
    """`SELECT pg_terminate_backend(4242); ...` for up to MAX_STATEMENTS pids."""
    calls = " ".join(f"SELECT {function}({pid});" for pid in list(pids)[:MAX_STATEMENTS])
    if len(pids) > MAX_STATEMENTS:
        calls += f" (and {len(pids) - MAX_STATEMENTS} more pids listed in the evidence)"
    return calls


def pg_interval(seconds: int) -> str:
    """'5min' / '90s' / '1h' as PostgreSQL accepts in SET."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}min"
    return f"{seconds}s"


def alter_role(role: str | None, setting: str, seconds: int) -> str:
    target = f'"{role}"' if role else "<app role>"
    return f"ALTER ROLE {target} SET {setting} = '{pg_interval(seconds)}';"


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


def leak_remediation(readings: Readings, signature: LeakSignature) -> list[str]:
    """Fix the code path, free the leaked backends, and the one idle-in-transaction backstop."""
    steps: list[str] = []
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
    else:
        steps.append(
            "Find the code path: log pool checkout/checkin events with a stack origin "
            "(SQLAlchemy `checkout`/`checkin` events) and close every session with `with`/`async "
            "with`"
        )
    pids = [h.pid for h in signature.stuck]
    if pids:
        steps.append(f"Free the leaked backends now: {backend_calls('pg_terminate_backend', pids)}")
    trend = signature.trend
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
    """A finding with the usual identity: id `check:label`, the check's own runbook by default."""
    return Finding(
        id=f"{check}:{label}",
        check=check,
        severity=severity,
        confidence=confidence,
        title=title,
        summary=summary,
        runbook=runbook or check,
        role=role,
        evidence=evidence or {},
        remediation=tuple(remediation),
    )
