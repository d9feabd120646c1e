"""threadpool-deadlock: every pool connection checked out by threads that wait, nothing runs."""

from __future__ import annotations

from pooldoctor.checks.common import finding
from pooldoctor.checks.spec import CheckSpec
from pooldoctor.findings import Finding, Severity
from pooldoctor.readings import Readings

CHECK = "threadpool-deadlock"


def check(readings: Readings) -> list[Finding]:
    pool = readings.pool
    timeouts = readings.pool_timeouts
    signature = readings.deadlock
    if signature is None:
        return []
    label = readings.label
    summary = f"{pool.describe()}; " + "; ".join(signature.reasons)
    if timeouts.seen:
        summary += f"; {timeouts.describe('pool timeouts')}"
    return [
        finding(
            CHECK,
            label,
            severity=Severity.CRITICAL,
            confidence=signature.confidence,
            title="Thread-pool deadlock: threads hold every connection and wait for each other",
            summary=summary,
            evidence={
                "pool": pool.as_evidence(),
                "log": timeouts.as_evidence(),
                **signature.evidence,
            },
            remediation=(
                "Release the deadlock now: restart the stuck instances one at a time (it recurs "
                "under the same load); first keep one worker's stacks as evidence with `py-spy "
                "dump --pid <worker pid>` (a worker, not the master: list them with `pgrep -P "
                "<master pid>`; py-spy needs ptrace: root, or SYS_PTRACE in a container)",
                "Cut concurrency per process below the pool (uvicorn --limit-concurrency), or "
                "make the pool at least as large as the thread pool (anyio: 40) within the "
                "server budget",
                "Upgrade FastAPI to >= 0.82.0 (dependency cleanup no longer needs a free thread)",
                "Open and close the session inside the path function instead of a yield dependency",
            ),
        )
    ]


SPEC = CheckSpec(
    CHECK,
    (CHECK,),
    "Pool full and callers waiting while the app's backends sit idle, frozen together; or "
    "timeout bursts one pool_timeout apart that end every transaction.",
    check,
)
