"""missing-timeouts (risk): timeouts that would bound an incident are unset or mis-ordered."""

from __future__ import annotations

from typing import Any

from pooldoctor.checks.common import alter_role, app_label
from pooldoctor.checks.signals import (
    POOL_TIMEOUT_EVENTS,
    fmt_duration,
    identify_app,
    log_signal,
    measure_throughput,
    pool_signal,
    setting_seconds,
)
from pooldoctor.evidence import Evidence
from pooldoctor.findings import Finding, Role, Severity

CHECK = "missing-timeouts"
SQLALCHEMY_DEFAULT_POOL_TIMEOUT = 30.0  # QueuePool default: a request waits 30 s before failing
LATENCY_SENSITIVE_POOL_TIMEOUT = 10.0  # web requests should fail fast rather than queue 30 s
SUGGESTED_STATEMENT_TIMEOUT = 60  # seconds: generous for web requests, bounds runaway queries
SUGGESTED_IDLE_TX_TIMEOUT = 300  # seconds: backstop for leaked or forgotten transactions


def _problems(evidence: Evidence) -> tuple[list[str], list[str], dict[str, Any]]:
    pg = evidence.postgres
    config = evidence.config
    app = identify_app(pg)
    role = app.role if app is not None else None
    problems: list[str] = []
    steps: list[str] = []
    statement = setting_seconds(pg, "statement_timeout")
    configured_statement = config.statement_timeout if config is not None else None
    idle_tx = setting_seconds(pg, "idle_in_transaction_session_timeout")
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
            alter_role(role, "idle_in_transaction_session_timeout", SUGGESTED_IDLE_TX_TIMEOUT)
        )
    if config is not None and (config.pool_size is not None or config.pool_timeout is not None):
        pool_timeout = config.pool_timeout
        facts["pool_timeout"] = pool_timeout
        effective = SQLALCHEMY_DEFAULT_POOL_TIMEOUT if pool_timeout is None else pool_timeout
        if effective >= SQLALCHEMY_DEFAULT_POOL_TIMEOUT:
            shown = "unset (default 30 s)" if pool_timeout is None else fmt_duration(effective)
            problems.append(f"pool_timeout {shown}: requests queue that long before failing")
            steps.append(
                f"pool_timeout={LATENCY_SENSITIVE_POOL_TIMEOUT:g} for a web API: fail fast"
            )
        throughput = measure_throughput(evidence)
        hold = throughput.hold_seconds if throughput is not None else None
        if hold is not None and effective < hold:
            problems.append(
                f"pool_timeout {fmt_duration(effective)} shorter than the mean hold time "
                f"{fmt_duration(hold)}: callers give up before a typical holder returns"
            )
        limit = configured_statement or statement
        if limit and pool_timeout is not None and effective < limit and hold is None:
            facts["pool_timeout_below_statement_timeout"] = True
    return problems, steps, facts


def check(evidence: Evidence) -> list[Finding]:
    if evidence.postgres is None and evidence.config is None:
        return []
    problems, steps, facts = _problems(evidence)
    if not problems:
        return []
    pool = pool_signal(evidence)
    timeouts = log_signal(evidence, *POOL_TIMEOUT_EVENTS)
    incident = pool.full_now or timeouts.current
    # With neither timeout nothing bounds a stuck holder: a warning even before an incident.
    warn = incident or bool(facts.get("holders_unbounded"))
    return [
        Finding(
            id=f"{CHECK}:{app_label(evidence)}",
            check=CHECK,
            severity=Severity.WARNING if warn else Severity.INFO,
            confidence=0.9,
            title="Missing or mis-ordered timeouts",
            summary="; ".join(problems)
            + (
                "; with the pool exhausted now these let holders keep connections unbounded"
                if incident
                else ""
            ),
            runbook=CHECK,
            role=Role.RISK,
            evidence=facts | {"problems": problems},
            remediation=tuple(steps),
        )
    ]
