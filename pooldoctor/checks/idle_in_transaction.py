"""idle-in-transaction: transactions held open while the app waits elsewhere; they rotate."""

from __future__ import annotations

import statistics

from pooldoctor.checks.common import alter_role, app_label, idle_tx_timeout_suggestion
from pooldoctor.checks.connection_leak import LEAK_MIN_AGE_SECONDS
from pooldoctor.checks.pool_exhausted import POOL_TIMEOUT_EVENTS
from pooldoctor.checks.sessions import describe_oldest, session_trend, sessions_evidence
from pooldoctor.checks.signals import (
    MIN_APP_BACKENDS,
    describe_holders,
    fmt_duration,
    group_holders,
    log_signal,
    percentile,
    pool_signal,
    setting_seconds,
)
from pooldoctor.evidence import Evidence, LogEvent
from pooldoctor.findings import Finding, Severity

CHECK = "idle-in-transaction"
RUNBOOK = "idle-in-transaction"
IDLE_TX_MIN_SECONDS = 1.0  # shorter idle-in-transaction gaps are ordinary ORM round trips
IDLE_TX_SHARE = 0.3  # share of app backends waiting inside a transaction that starves the pool
CRITICAL_SHARE = 0.5  # at least half of the app's connections parked in open transactions


def check(evidence: Evidence) -> list[Finding]:
    pool = pool_signal(evidence)
    timeouts = log_signal(evidence, *POOL_TIMEOUT_EVENTS)
    killed = log_signal(evidence, LogEvent.IDLE_IN_TRANSACTION_TIMEOUT)
    trend = session_trend(evidence)
    label = app_label(evidence)
    reasons: list[str] = []
    confidence = 0.0
    waiting = []
    if trend is not None and len(trend.latest) >= MIN_APP_BACKENDS:
        persistent = {h.pid for h in trend.persistent_in_tx if h.age_seconds >= LEAK_MIN_AGE_SECONDS}
        waiting = [
            h for h in trend.idle_in_tx
            if h.age_seconds >= IDLE_TX_MIN_SECONDS and h.pid not in persistent
        ]
        if (not trend.multi_sample) and any(h.age_seconds >= LEAK_MIN_AGE_SECONDS for h in waiting):
            waiting = [h for h in waiting if h.age_seconds < LEAK_MIN_AGE_SECONDS * 10]
        share = len(waiting) / len(trend.latest)
        if share >= IDLE_TX_SHARE and len(waiting) >= 2:
            ages = [h.age_seconds for h in waiting]
            confidence = 0.5
            reasons.append(
                f"{len(waiting)}/{len(trend.latest)} backends of {trend.app.label} idle in "
                f"transaction, median {fmt_duration(statistics.median(ages))}, p90 "
                f"{fmt_duration(percentile(ages, 0.9))}, {describe_oldest(waiting)}"
            )
            if trend.multi_sample and trend.rotated_in_tx:
                confidence += 0.2
                reasons.append(
                    f"they rotate: {trend.rotated_in_tx} transactions began or ended between "
                    f"the {trend.samples} samples (idle-in-transaction per sample: "
                    f"{', '.join(map(str, trend.in_tx_per_sample))})"
                )
            elif trend.multi_sample:
                confidence -= 0.2
    if killed.current:
        confidence = max(confidence, 0.35) + 0.15
        reasons.append(killed.describe("idle-in-transaction timeouts (25P03)"))
    if confidence <= 0.0:
        if killed.seen:
            return [_history(label, killed.describe("idle-in-transaction timeouts (25P03)"),
                             killed.weight)]
        return []
    holder_rows = group_holders(pool.holders, IDLE_TX_MIN_SECONDS)
    if holder_rows:
        reasons.append(f"held by {describe_holders(holder_rows)}")
    if pool.full_now:
        confidence += 0.1
    share_now = len(waiting) / len(trend.latest) if trend and trend.latest else 0.0
    critical = (pool.full_now or timeouts.current) and share_now >= CRITICAL_SHARE
    severity = Severity.CRITICAL if critical else Severity.WARNING
    summary = "; ".join(([pool.describe()] if pool.has_data else []) + reasons)
    steps = [
        (f"Move the slow work out of the transaction in {holder_rows[0]['origin']}: commit "
         "before calling external services")
        if holder_rows
        else "Commit before calling external services or doing CPU work; keep transactions "
        "around database work only",
    ]
    current_timeout = setting_seconds(evidence.postgres, "idle_in_transaction_session_timeout")
    if trend is not None and not current_timeout:
        seconds = idle_tx_timeout_suggestion([h.age_seconds for h in waiting])
        role = next((b.usename for b in trend.latest if b.usename), None)
        steps.append(
            f"Backstop above the observed ages: {alter_role(role, 'idle_in_transaction_session_timeout', seconds)}"
        )
    steps.append("Behind PgBouncer also set idle_transaction_timeout")
    facts = {
        "pool": pool.as_evidence(),
        "idle_in_transaction": sessions_evidence(waiting),
        "holders": holder_rows,
        "timeouts_25P03": killed.as_evidence(),
        "pool_timeouts": timeouts.as_evidence(),
    }
    if trend is not None:
        facts["app"] = trend.app.as_evidence()
        facts["rotated_transactions"] = trend.rotated_in_tx
        facts["per_sample"] = list(trend.in_tx_per_sample)
    return [
        Finding(
            id=f"{CHECK}:{label}",
            check=CHECK,
            severity=severity,
            confidence=round(min(confidence, 0.95), 2),
            title="Idle in transaction: connections held open while the app waits elsewhere",
            summary=summary,
            runbook=RUNBOOK,
            evidence=facts,
            remediation=tuple(steps),
        )
    ]


def _history(label: str, description: str, weight: float) -> Finding:
    return Finding(
        id=f"{CHECK}:{label}",
        check=CHECK,
        severity=Severity.INFO,
        confidence=round(0.3 * weight, 2),
        title="Idle-in-transaction timeouts earlier (history)",
        summary=description,
        runbook=RUNBOOK,
    )
