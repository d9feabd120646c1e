"""slow-queries: the app's backends are busy with long-running statements (not lock waits)."""

from __future__ import annotations

from datetime import datetime

from pooldoctor.checks.common import MAX_CONFIDENCE, alter_role, backend_calls, finding
from pooldoctor.checks.spec import CheckSpec
from pooldoctor.durations import format_duration
from pooldoctor.evidence import Backend, LogEvent
from pooldoctor.findings import Finding, Severity
from pooldoctor.readings import Readings
from pooldoctor.readings.app import ACTIVE, describe_sessions, is_maintenance, other_clients
from pooldoctor.readings.logs import POOL_TIMEOUT_EVENTS
from pooldoctor.readings.sessions import seconds_between
from pooldoctor.readings.text import preview, session_label
from pooldoctor.readings.thresholds import (
    MAX_LISTED,
    SLOW_QUERY_SECONDS,
    SUGGESTED_STATEMENT_TIMEOUT,
)

CHECK = "slow-queries"
SLOW_SHARE = 0.3  # share of app backends stuck in long statements that drives the pool to full
MIN_SLOW = 2  # one slow report query is normal; two or more at once is a pattern
CRITICAL_SHARE = 0.5  # half of the app's connections in long statements
FOREIGN_LONG_QUERY_SECONDS = 300.0  # other apps' statements worth naming as context
FOREIGN_CONFIDENCE = 0.2


def _age(backend: Backend, at: datetime) -> float:
    return seconds_between(at, backend.query_start) or 0.0


def check(readings: Readings) -> list[Finding]:
    findings: list[Finding] = []
    trend = readings.sessions
    pool = readings.pool
    timeouts = readings.log(*POOL_TIMEOUT_EVENTS)
    cancelled = readings.log(LogEvent.STATEMENT_TIMEOUT)
    slow: list[Backend] = []
    reasons: list[str] = []
    confidence = 0.0
    if trend is not None and trend.latest:
        slow = sorted(
            (
                b
                for b in trend.active
                if b.wait_event_type != "Lock" and _age(b, trend.latest_at) >= SLOW_QUERY_SECONDS
            ),
            key=lambda b: -_age(b, trend.latest_at),
        )
        share = len(slow) / len(trend.latest)
        if len(slow) >= MIN_SLOW and share >= SLOW_SHARE:
            confidence = 0.6
            oldest = slow[0]
            reasons.append(
                f"{len(slow)}/{len(trend.latest)} backends of {trend.app.label} run statements "
                f"older than {format_duration(SLOW_QUERY_SECONDS)}; longest pid {oldest.pid} for "
                f"{format_duration(_age(oldest, trend.latest_at))}: {preview(oldest.query)}"
            )
            hidden = readings.visibility.app_counts_note(trend.app.label)
            if hidden:
                reasons.append(hidden)
            if pool.full_now:
                confidence += 0.15
    if cancelled.current:
        confidence = max(confidence, 0.35) + 0.15
        reasons.append(cancelled.describe("statement timeouts (57014)"))
    if confidence > 0.0:
        critical = (
            (pool.full_now or timeouts.current)
            and trend is not None
            and (len(slow) >= CRITICAL_SHARE * max(1, len(trend.latest)))
        )
        findings.append(_finding(readings, slow, reasons, confidence, critical))
    findings.extend(_foreign_long_queries(readings))
    return findings


def _finding(
    readings: Readings, slow: list[Backend], reasons: list[str], confidence: float, critical: bool
) -> Finding:
    evidence, label, trend, pool = (
        readings.evidence,
        readings.label,
        readings.sessions,
        readings.pool,
    )
    at = trend.latest_at if trend is not None else None
    steps: list[str] = []
    if slow:
        app = trend.app if trend is not None else None
        cancel = backend_calls(
            "pg_cancel_backend",
            [b.pid for b in slow],
            application_name=app.application_name if app else None,
            role=(app.role or app.usename) if app else None,
            states=["active"],
        )
        steps.append(f"Cancel the longest statements if they are runaway: {cancel}")
        steps.append(
            f"EXPLAIN the statement (plain EXPLAIN only plans; EXPLAIN ANALYZE runs it again, so "
            f"use a replica and BEGIN/ROLLBACK for writes): {preview(slow[0].query)}"
        )
    current = readings.setting_seconds("statement_timeout")
    configured = evidence.config.statement_timeout if evidence.config else None
    if not current and not configured:
        role = next((b.usename for b in slow if b.usename), None)
        steps.append(
            "Bound statements: "
            + alter_role(role, "statement_timeout", SUGGESTED_STATEMENT_TIMEOUT)
        )
    steps.append("Look for N+1 patterns (many short identical statements) and missing indexes")
    return finding(
        CHECK,
        label,
        severity=Severity.CRITICAL if critical else Severity.WARNING,
        confidence=min(confidence, MAX_CONFIDENCE),
        title="Slow queries hold the app's connections",
        summary="; ".join(([pool.describe()] if pool.has_data else []) + reasons),
        evidence={
            "pool": pool.as_evidence(),
            "slow_backends": [
                {
                    "pid": b.pid,
                    "seconds": round(_age(b, at), 1) if at else None,
                    "wait_event_type": b.wait_event_type,
                    "query": preview(b.query),
                }
                for b in slow[:MAX_LISTED]
            ],
            "app": trend.app.as_evidence() if trend is not None else None,
        },
        remediation=tuple(steps),
    )


def _foreign_long_queries(readings: Readings) -> list[Finding]:
    """Other clients' long statements: named as context, not as the app's cause."""
    label = readings.label
    pg = readings.evidence.postgres
    if pg is None or not pg.samples:
        return []
    trend = readings.sessions
    last = pg.samples[-1]
    long_running = [
        b
        for b in other_clients(last, trend.app if trend else None)
        if b.state == ACTIVE and _age(b, last.at) >= FOREIGN_LONG_QUERY_SECONDS
    ]
    if not long_running:
        return []
    oldest = max(long_running, key=lambda b: _age(b, last.at))
    kind = "maintenance" if is_maintenance(oldest) else "another application"
    return [
        finding(
            CHECK,
            "others",
            severity=Severity.INFO,
            confidence=FOREIGN_CONFIDENCE,
            title="Long statements from other clients (they hold none of the app's connections)",
            summary="; ".join(
                part
                for part in (
                    f"{len(long_running)} long statement(s) outside {label}",
                    f"longest {session_label(oldest)} ({kind}) for "
                    f"{format_duration(_age(oldest, last.at))}",
                    "not the app's root cause unless it holds locks the app waits on",
                    readings.visibility.other_counts_note(),
                )
                if part
            ),
            evidence={"sessions": describe_sessions(long_running)},
        )
    ]


SPEC = CheckSpec(
    CHECK,
    (CHECK,),
    "App backends active in long statements (not lock waits); statement timeouts (57014).",
    check,
)
