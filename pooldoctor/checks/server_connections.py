"""server-max-connections: the server refuses new sessions; the fleet's pools exceed its slots."""

from __future__ import annotations

from typing import Any

from pooldoctor.checks.common import HISTORY_CONFIDENCE, MAX_CONFIDENCE, finding
from pooldoctor.checks.spec import CheckSpec
from pooldoctor.evidence import Evidence, LogEvent
from pooldoctor.findings import Finding, Role, Severity
from pooldoctor.readings import Readings
from pooldoctor.readings.app import client_backends, describe_sessions
from pooldoctor.readings.budget import ServerBudget, budget_remedy
from pooldoctor.readings.exporter import exporter_servers
from pooldoctor.readings.logs import LogSignal

CHECK = "server-max-connections"
SLOTS_WARN_FRACTION = 0.9  # sessions at 90% of usable slots: the next burst is refused
TOO_MANY_SQLSTATE = "53300"
TOO_MANY_MARKERS = ("too many clients", "connection slots are reserved", "too many connections")


def _refused_now(evidence: Evidence) -> str | None:
    pg = evidence.postgres
    failure = pg.connect_failure if pg is not None else None
    if failure is None:
        return None
    if failure.sqlstate == TOO_MANY_SQLSTATE or any(
        m in failure.message.lower() for m in TOO_MANY_MARKERS
    ):
        return f"pooldoctor's own connection was refused: {failure.message}"
    return None


def _slot_usage(evidence: Evidence, budget: ServerBudget | None) -> tuple[int, int, str] | None:
    """(sessions, usable slots, where seen): pg_stat_activity, else postgres_exporter's series."""
    pg = evidence.postgres
    if pg is not None and pg.samples and budget is not None:
        usable = budget.max_connections - budget.superuser_reserved - budget.reserved
        return len(client_backends(pg.samples[-1])), usable, "pg_stat_activity"
    servers = exporter_servers(evidence)
    if not servers:
        return None
    fullest = servers[0]
    return fullest.sessions, fullest.usable, f"postgres_exporter {fullest.instance}"


def _remediation(budget: ServerBudget | None) -> tuple[str, ...]:
    """Least disruptive first; nothing that restarts the server before the last step."""
    steps = [
        "Stop non-essential clients first (ad-hoc psql, BI tools, stuck jobs: the other sessions "
        "in the evidence); ask their owners rather than ending their sessions"
    ]
    if budget is not None:
        remedy = budget_remedy(budget)
        if remedy:
            steps.append(f"{remedy}, rolled out one instance at a time")
    steps.extend(
        [
            "Last resort, raise max_connections: it needs a server restart (an outage, then every "
            "pool reconnecting), standbys first, and memory: shared_buffers + max_connections x "
            "(2 x work_mem + ~10 MB) must fit in RAM",
            "Planned change, not an incident step: PgBouncer (transaction mode) in front, with "
            "small per-process pools",
        ]
    )
    return tuple(steps)


def check(readings: Readings) -> list[Finding]:
    evidence = readings.evidence
    app = readings.app
    label = readings.label
    budget = readings.budget
    logs = readings.log(LogEvent.TOO_MANY_CLIENTS, LogEvent.RESERVED_SLOTS, LogEvent.ROLE_LIMIT)
    refused = _refused_now(evidence)
    usage = _slot_usage(evidence, budget)
    pg = evidence.postgres
    full_limits = [
        limit
        for limit in (pg.limits if pg is not None else ())
        if 0 <= limit.limit <= limit.current
    ]
    reasons: list[str] = []
    facts: dict[str, Any] = {"log": logs.as_evidence()}
    confidence = 0.0
    severity = Severity.WARNING
    if refused:
        reasons.append(refused)
        confidence = 0.8
        severity = Severity.CRITICAL
    if logs.current:
        reasons.append(logs.describe("refused connections (53300 / reserved slots / role limit)"))
        confidence = max(confidence, 0.7) + 0.1
        severity = Severity.CRITICAL
    if usage is not None:
        used, usable, seen_in = usage
        facts.update(client_sessions=used, usable_slots=usable, sessions_from=seen_in)
        if usable > 0 and used >= SLOTS_WARN_FRACTION * usable:
            reasons.append(f"{used} client sessions of {usable} usable slots in use ({seen_in})")
            if seen_in == "pg_stat_activity" and readings.visibility.slot_note():
                reasons.append(readings.visibility.slot_note())
                facts["hidden_sessions"] = readings.visibility.hidden_sessions
            confidence = max(confidence, 0.55) + 0.1
    for limit in full_limits:
        reasons.append(
            f"{limit.kind} {limit.name} at its connection limit {limit.current}/{limit.limit}"
        )
        confidence = max(confidence, 0.6)
    if budget is not None:
        facts["budget"] = budget.as_evidence()
        if pg is not None and pg.samples:
            facts["sessions"] = describe_sessions(client_backends(pg.samples[-1]))
    if confidence > 0.0:
        if budget is not None:
            reasons.append(budget.arithmetic())
            if budget.fits is False:
                confidence += 0.1
        if app is not None:
            facts["app"] = app.as_evidence()
        return [
            finding(
                CHECK,
                label,
                severity=severity,
                confidence=min(confidence, MAX_CONFIDENCE),
                title="PostgreSQL out of connection slots",
                summary="; ".join(reasons),
                evidence=facts,
                remediation=_remediation(budget),
            )
        ]
    findings: list[Finding] = []
    if budget is not None and budget.fits is False:
        findings.append(
            finding(
                CHECK,
                f"{label}:budget",
                severity=Severity.WARNING,
                confidence=0.9,
                title="Pools can open more connections than the server allows",
                summary=budget.arithmetic()
                + "; a burst (or every pool filling up) will be refused with 'too many clients'",
                role=Role.RISK,
                evidence=facts,
                remediation=_remediation(budget),
            )
        )
    if logs.seen:
        findings.append(_history(label, logs))
    return findings


def _history(label: str, logs: LogSignal) -> Finding:
    return finding(
        CHECK,
        f"{label}:history",
        severity=Severity.INFO,
        confidence=HISTORY_CONFIDENCE * logs.weight,
        title="Refused connections earlier (history)",
        summary=logs.describe("refused connections (53300 / reserved slots / role limit)"),
        evidence={"log": logs.as_evidence()},
    )


SPEC = CheckSpec(
    CHECK,
    (CHECK,),
    "Refused connections (53300), slots nearly used up, and workers x (pool_size + "
    "max_overflow) against the server budget.",
    check,
)
