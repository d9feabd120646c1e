"""missing-timeouts (risk): timeouts that would bound an incident are unset or mis-ordered."""

from __future__ import annotations

from typing import Any

from pooldoctor.checks.common import alter_role, finding
from pooldoctor.checks.spec import CheckSpec
from pooldoctor.durations import format_duration
from pooldoctor.findings import Finding, Role, Severity
from pooldoctor.readings import Readings
from pooldoctor.readings.logs import POOL_TIMEOUT_EVENTS
from pooldoctor.readings.thresholds import SUGGESTED_STATEMENT_TIMEOUT

CHECK = "missing-timeouts"
SQLALCHEMY_DEFAULT_POOL_TIMEOUT = 30.0  # QueuePool default: a request waits 30 s before failing
LATENCY_SENSITIVE_POOL_TIMEOUT = 10.0  # web requests should fail fast rather than queue 30 s


def _problems(readings: Readings) -> tuple[list[str], list[str], dict[str, Any]]:
    config = readings.evidence.config
    app = readings.app
    role = app.role if app is not None else None
    problems: list[str] = []
    steps: list[str] = []
    statement = readings.setting_seconds("statement_timeout")
    configured_statement = config.statement_timeout if config is not None else None
    idle_tx = readings.setting_seconds("idle_in_transaction_session_timeout")
    facts: dict[str, Any] = {
        "statement_timeout_seconds": statement,
        "idle_in_transaction_session_timeout_seconds": idle_tx,
        "configured_statement_timeout": configured_statement,
    }
    if statement == 0 and not configured_statement:
        problems.append("no statement_timeout (server 0, app config unset)")
        steps.append(
            alter_role(role, "statement_timeout", SUGGESTED_STATEMENT_TIMEOUT)
            + "; it also cancels migrations and CREATE INDEX CONCURRENTLY run as this role: give "
            "them their own role or SET statement_timeout = 0 in their session"
        )
    facts["holders_unbounded"] = statement == 0 and not configured_statement and idle_tx == 0
    if idle_tx == 0:
        problems.append("no idle_in_transaction_session_timeout")
        steps.append(
            alter_role(role, "idle_in_transaction_session_timeout", readings.idle_tx_timeout)
        )
    if config is not None and (config.pool_size is not None or config.pool_timeout is not None):
        pool_timeout = config.pool_timeout
        facts["pool_timeout"] = pool_timeout
        effective = SQLALCHEMY_DEFAULT_POOL_TIMEOUT if pool_timeout is None else pool_timeout
        if effective >= SQLALCHEMY_DEFAULT_POOL_TIMEOUT:
            shown = "unset (default 30 s)" if pool_timeout is None else format_duration(effective)
            problems.append(f"pool_timeout {shown}: requests queue that long before failing")
            steps.append(
                f"pool_timeout={LATENCY_SENSITIVE_POOL_TIMEOUT:g} for a web API: fail fast"
            )
        throughput = readings.throughput
        hold = throughput.hold_seconds if throughput is not None else None
        if hold is not None and effective < hold:
            problems.append(
                f"pool_timeout {format_duration(effective)} shorter than the mean hold time "
                f"{format_duration(hold)}: callers give up before a typical holder returns"
            )
        limit = configured_statement or statement
        if limit and pool_timeout is not None and effective < limit and hold is None:
            facts["pool_timeout_below_statement_timeout"] = True
    return problems, steps, facts


def check(readings: Readings) -> list[Finding]:
    evidence = readings.evidence
    if evidence.postgres is None and evidence.config is None:
        return []
    problems, steps, facts = _problems(readings)
    if not problems:
        return []
    pool = readings.pool
    timeouts = readings.log(*POOL_TIMEOUT_EVENTS)
    incident = pool.full_now or timeouts.current
    # With neither timeout nothing bounds a stuck holder: a warning even before an incident.
    warn = incident or bool(facts.get("holders_unbounded"))
    return [
        finding(
            CHECK,
            readings.label,
            severity=Severity.WARNING if warn else Severity.INFO,
            confidence=0.9,
            title="Missing or mis-ordered timeouts",
            summary="; ".join(problems)
            + (
                "; with the pool exhausted now these let holders keep connections unbounded"
                if incident
                else ""
            ),
            role=Role.RISK,
            evidence=facts | {"problems": problems},
            remediation=tuple(steps),
        )
    ]


SPEC = CheckSpec(
    CHECK,
    (CHECK,),
    "Unset statement / idle-in-transaction timeouts, default pool_timeout (a risk).",
    check,
)
