"""pool-exhausted (symptom): the pool is at capacity and/or callers time out waiting for it."""

from __future__ import annotations

from pooldoctor.checks.common import HISTORY_CONFIDENCE, finding
from pooldoctor.checks.spec import CheckSpec
from pooldoctor.findings import Finding, Role, Severity
from pooldoctor.readings import Readings
from pooldoctor.readings.logs import POOL_TIMEOUT_EVENTS
from pooldoctor.readings.text import instance_label

CHECK = "pool-exhausted"
RUNBOOK = "pool-undersized"  # the diagnosis re-points it to the cause ranked first


def check(readings: Readings) -> list[Finding]:
    pool = readings.pool
    timeouts = readings.log(*POOL_TIMEOUT_EVENTS)
    if not pool.full_samples and not timeouts.seen:
        return []
    parts: list[str] = []
    if pool.has_data:
        parts.append(pool.describe())
    if timeouts.seen:
        parts.append(timeouts.describe("pool checkout timeouts"))
    current = pool.full_now or timeouts.current
    label = readings.label
    if not current:
        severity = Severity.INFO
        weight = timeouts.weight if timeouts.seen else 0.5
        confidence = HISTORY_CONFIDENCE * weight
        title = "Pool exhaustion earlier (history): the pool is not exhausted now"
    else:
        corroborated = pool.full_now and (
            timeouts.current or pool.waiting_now > 0 or (pool.full_always and pool.samples >= 2)
        )
        severity = Severity.CRITICAL if corroborated else Severity.WARNING
        confidence = 0.9 if pool.full_now and timeouts.current else 0.7
        title = "Pool exhausted: requests wait for a connection"
        fleet = len(pool.instances)
        if fleet > 1 and 0 < pool.instances_full_now < fleet:
            full = [instance_label(i.url) for i in pool.full_instances_now()[:3]]
            more = pool.instances_full_now - len(full)
            title = (
                f"Pool exhausted on {', '.join(full)}{f' and {more} more' if more else ''} "
                f"({pool.instances_full_now} of {fleet} instances): requests wait for a connection"
            )
    return [
        finding(
            CHECK,
            label,
            severity=severity,
            confidence=confidence,
            title=title,
            summary="; ".join(parts),
            runbook=RUNBOOK,
            role=Role.SYMPTOM,
            evidence={"pool": pool.as_evidence(), "pool_timeouts": timeouts.as_evidence()},
            remediation=(
                "Treat the cause ranked above; a restart frees connections only until it recurs",
            ),
        )
    ]


SPEC = CheckSpec(
    CHECK,
    (RUNBOOK,),
    "Symptom: pool at capacity and/or QueuePool timeouts (3o7r); ranked below its cause.",
    check,
)
