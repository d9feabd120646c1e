"""connect-timeouts: establishing connections is slow or times out (cold starts, network)."""

from __future__ import annotations

import math
from typing import Any

from pooldoctor.checks.common import MAX_CONFIDENCE, finding
from pooldoctor.checks.spec import CheckSpec
from pooldoctor.durations import format_duration
from pooldoctor.evidence import Evidence, LogEvent
from pooldoctor.findings import Finding, Severity
from pooldoctor.readings import Readings

CHECK = "connect-timeouts"
SLOW_CONNECT_SECONDS = (
    1.0  # connecting takes milliseconds on a LAN; seconds is a cold start or overload
)
MIN_CONNECT_TIMEOUT = 10  # seconds: covers serverless cold starts (5-10 s)
TIMEOUT_FACTOR = 2.0  # connect timeout at least twice the slowest connect observed
TIMEOUT_MARKERS = ("timeout", "timed out")


def _observed_connect(evidence: Evidence) -> tuple[float | None, list[str]]:
    seen: list[float] = []
    notes: list[str] = []
    pg = evidence.postgres
    if pg is not None and pg.connect_seconds is not None:
        seen.append(pg.connect_seconds)
        notes.append(f"pooldoctor connected in {format_duration(pg.connect_seconds)}")
    for instance in evidence.pools:
        if not instance.samples:
            continue
        counters = instance.samples[-1].counters
        if counters.get("connections_num"):
            mean = counters.get("connections_ms", 0.0) / counters["connections_num"] / 1000
            seen.append(mean)
            notes.append(
                f"psycopg_pool mean connect {format_duration(mean)} "
                f"over {counters['connections_num']:.0f} connections"
            )
    return (max(seen) if seen else None), notes


def check(readings: Readings) -> list[Finding]:
    evidence = readings.evidence
    logs = readings.log(LogEvent.CONNECT_TIMEOUT, LogEvent.CANNOT_CONNECT_NOW)
    observed, notes = _observed_connect(evidence)
    pg = evidence.postgres
    failure = pg.connect_failure if pg is not None else None
    own_timeout = failure is not None and any(
        m in f"{failure.category} {failure.message}".lower() for m in TIMEOUT_MARKERS
    )
    configured = evidence.config.connect_timeout if evidence.config else None
    pool = readings.pool
    label = readings.label
    reasons: list[str] = []
    confidence = 0.0
    if logs.seen and (logs.current or not (observed or own_timeout)):
        reasons.append(logs.describe("connect timeouts / cannot-connect-now errors"))
        confidence = 0.6 if logs.current else 0.3 * logs.weight
    if own_timeout and failure is not None:
        reasons.append(f"pooldoctor could not connect either: {failure.message}")
        confidence = max(confidence, 0.6) + 0.15
    slow = observed is not None and observed >= SLOW_CONNECT_SECONDS
    if slow and observed is not None:
        reasons.extend(notes)
        confidence = max(confidence, 0.5) + 0.1
    too_short = configured is not None and observed is not None and configured < observed * 1.5
    if too_short:
        reasons.append(
            f"configured connect timeout {format_duration(configured or 0)} is below the "
            f"observed connect latency {format_duration(observed or 0)}"
        )
        confidence += 0.1
    if confidence <= 0.0:
        return []
    if pool.full_now:
        confidence -= 0.15
        reasons.append("the pool is exhausted too: slow connects alone do not cause that")
    current = logs.current or own_timeout or slow
    severity = Severity.WARNING if current else Severity.INFO
    if own_timeout and logs.current:
        severity = Severity.CRITICAL
    suggested = max(MIN_CONNECT_TIMEOUT, math.ceil((observed or 0.0) * TIMEOUT_FACTOR))
    facts: dict[str, Any] = {
        "observed_connect_seconds": observed,
        "configured_connect_timeout": configured,
        "log": logs.as_evidence(),
    }
    return [
        finding(
            CHECK,
            label,
            severity=severity,
            confidence=max(0.05, min(confidence, MAX_CONFIDENCE)),
            title="Slow or timing-out connection establishment",
            summary="; ".join(reasons),
            evidence=facts,
            remediation=(
                f"Connect timeout >= {suggested}s (connect_args={{'connect_timeout': {suggested}}})"
                " so cold starts can finish",
                "SQLAlchemy's pool_timeout does not cover opening a connection (below pool_size + "
                "max_overflow a checkout connects itself and fails with the driver's error); "
                f"psycopg_pool: timeout >= {suggested}s, which includes connecting",
                "Retry connects with backoff; keep the database warm or lengthen scale-to-zero",
            ),
        )
    ]


SPEC = CheckSpec(
    CHECK,
    (CHECK,),
    "Connect timeouts in logs, slow connects measured, connect timeout below latency.",
    check,
)
