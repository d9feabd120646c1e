"""async-cancellation-leak: a leak that follows cancelled asyncio tasks (client disconnects)."""

from __future__ import annotations

from pooldoctor.checks.common import finding, leak_remediation, leak_summary
from pooldoctor.checks.spec import CheckSpec
from pooldoctor.findings import Finding
from pooldoctor.readings import Readings
from pooldoctor.readings.leak import leak_evidence, leak_severity

CHECK = "async-cancellation-leak"
HINT_CONFIDENCE = 0.05  # each independent sign of cancellation adds this much to the leak's


def check(readings: Readings) -> list[Finding]:
    """The leak signature when cancellations line up in time with its GC cleanups."""
    signature = readings.leak
    hints = list(readings.cancellation)
    if signature is None or not hints:
        return []
    steps = leak_remediation(readings, signature)
    steps[-1:-1] = [
        "Upgrade SQLAlchemy (cancellation fixes: #8145, #6652, #12077) and asyncpg",
        "Shield connection cleanup from cancellation (asyncio.shield around close) and avoid "
        "middleware that cancels the request task on client disconnect",
    ]
    return [
        finding(
            CHECK,
            readings.label,
            severity=leak_severity(signature),
            confidence=min(0.97, signature.confidence + HINT_CONFIDENCE * len(hints)),
            title="Async cancellation leak: cancelled tasks leave connections checked out",
            summary=leak_summary(readings, signature, *hints),
            evidence={**leak_evidence(signature), "cancellation_hints": hints},
            remediation=tuple(steps),
        )
    ]


SPEC = CheckSpec(
    CHECK,
    (CHECK,),
    "A leak whose GC cleanups follow cancellations or client disconnects in the app log.",
    check,
)
