"""idle-in-transaction: transactions held open while the app waits elsewhere; they rotate."""

from __future__ import annotations

import statistics
from typing import Any

from pooldoctor.checks.common import HISTORY_CONFIDENCE, MAX_CONFIDENCE, alter_role, finding
from pooldoctor.checks.spec import CheckSpec
from pooldoctor.durations import format_duration
from pooldoctor.evidence import LogEvent
from pooldoctor.findings import Finding, Severity
from pooldoctor.readings import Readings
from pooldoctor.readings.app import enough_app_backends
from pooldoctor.readings.leak import is_orphaned
from pooldoctor.readings.pools import UNREPORTED_ORIGIN, describe_holders, group_holders
from pooldoctor.readings.sessions import (
    HeldSession,
    describe_oldest,
    held_in_tx,
    percentile,
    sessions_evidence,
)

CHECK = "idle-in-transaction"
IDLE_TX_MIN_SECONDS = 0.5  # shorter idle-in-transaction gaps are ordinary ORM round trips
MIN_IDLE_TX = 2  # one session waiting in a transaction is not a pattern
IDLE_TX_SHARE = 0.3  # share of app backends waiting inside a transaction that starves the pool
CRITICAL_SHARE = 0.5  # at least half of the app's connections parked in open transactions


def check(readings: Readings) -> list[Finding]:
    pool = readings.pool
    timeouts = readings.pool_timeouts
    killed = readings.log(LogEvent.IDLE_IN_TRANSACTION_TIMEOUT)
    trend = readings.sessions
    label = readings.label
    reasons: list[str] = []
    confidence = 0.0
    waiting: list[HeldSession] = []
    peak_total = 0
    holds = readings.holds
    streaming = {h.pid for h in holds.streaming}
    if trend is not None:
        for at, backends in trend.per_sample:
            if not enough_app_backends(len(backends), pool.capacity_now):
                continue
            held = [
                h
                for h in held_in_tx(at, backends, IDLE_TX_MIN_SECONDS)
                if h.pid not in readings.leaked_pids  # see diagnosis.arbitrate
                and h.pid not in streaming  # cursors moving on: streaming responses
            ]
            if len(held) > len(waiting):
                waiting, peak_total = held, len(backends)
        if len(waiting) >= MIN_IDLE_TX and len(waiting) >= IDLE_TX_SHARE * peak_total:
            ages = [h.age_seconds for h in waiting]
            confidence = 0.5
            reasons.append(
                f"up to {len(waiting)}/{peak_total} backends of {trend.app.label} idle in "
                f"transaction, median {format_duration(statistics.median(ages))}, p90 "
                f"{format_duration(percentile(ages, 0.9))}, {describe_oldest(waiting)}"
            )
            hidden = readings.visibility.app_counts_note(trend.app.label)
            if hidden:
                reasons.append(hidden)
            if trend.multi_sample and not trend.rotated_in_tx:
                confidence -= 0.1
                reasons.append(
                    f"none rotated during the {format_duration(trend.span_seconds)} capture, "
                    "shorter than their age; younger than the held age "
                    f"{format_duration(holds.baseline.held_after)} ({holds.baseline.basis}), so "
                    "not a leak yet: sample over a longer interval to see them rotate"
                )
            elif trend.multi_sample:
                confidence += 0.2
                reasons.append(
                    f"they rotate: {trend.rotated_in_tx} transactions began or ended between "
                    f"the {trend.samples} samples (idle-in-transaction per sample: "
                    f"{', '.join(map(str, trend.in_tx_per_sample))})"
                )
    if killed.current:
        confidence = max(confidence, 0.35) + 0.15
        reasons.append(killed.describe("idle-in-transaction timeouts (25P03)"))
    if confidence <= 0.0:
        if killed.seen:
            return [
                _history(
                    label, killed.describe("idle-in-transaction timeouts (25P03)"), killed.weight
                )
            ]
        return []
    holder_rows = group_holders(
        [h for h in pool.holders if not is_orphaned(h)], IDLE_TX_MIN_SECONDS
    )
    if holder_rows:
        reasons.append(f"held by {describe_holders(holder_rows)}")
    if pool.full_now:
        confidence += 0.1
    share_now = len(waiting) / peak_total if peak_total else 0.0
    critical = (pool.full_now or timeouts.current) and share_now >= CRITICAL_SHARE
    severity = Severity.CRITICAL if critical else Severity.WARNING
    summary = "; ".join(([pool.describe()] if pool.has_data else []) + reasons)
    median_wait = (
        format_duration(statistics.median(h.age_seconds for h in waiting)) if waiting else ""
    )
    steps = [
        "Stop the bleeding first: if the work done inside these transactions"
        + (f" (median {median_wait} idle)" if median_wait else "")
        + " is a call to another service that is slow right now, shorten that call's client "
        "timeout or switch the feature off; every held transaction shortens at once",
        (
            f"Move the slow work out of the transaction in {holder_rows[0]['origin']}: commit "
            "before calling external services"
        )
        if holder_rows and holder_rows[0]["origin"] != UNREPORTED_ORIGIN
        else "Commit before calling external services or doing CPU work; keep transactions "
        "around database work only",
    ]
    if trend is not None and readings.idle_tx_timeout_missing:
        statement = alter_role(
            trend.app.role, "idle_in_transaction_session_timeout", readings.idle_tx_timeout
        )
        steps.append(f"Backstop above the observed ages: {statement}")
    steps.append("Behind PgBouncer also set idle_transaction_timeout")
    facts: dict[str, Any] = {
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
        facts["hidden_app_sessions"] = readings.visibility.hidden_app_sessions
    return [
        finding(
            CHECK,
            label,
            severity=severity,
            confidence=min(confidence, MAX_CONFIDENCE),
            title="Idle in transaction: connections held open while the app waits elsewhere",
            summary=summary,
            evidence=facts,
            remediation=tuple(steps),
        )
    ]


def _history(label: str, description: str, weight: float) -> Finding:
    return finding(
        CHECK,
        label,
        severity=Severity.INFO,
        confidence=HISTORY_CONFIDENCE * weight,
        title="Idle-in-transaction timeouts earlier (history)",
        summary=description,
    )


SPEC = CheckSpec(
    CHECK,
    (CHECK,),
    "App backends idle in transaction whose ages cluster and rotate; 25P03 timeouts.",
    check,
)
