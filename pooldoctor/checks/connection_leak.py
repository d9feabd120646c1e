"""connection-leak: sessions checked out and never returned; the same backends sit idle for ever."""

from __future__ import annotations

from pooldoctor.checks.common import finding, leak_remediation, leak_summary
from pooldoctor.checks.spec import CheckSpec
from pooldoctor.findings import Finding
from pooldoctor.readings import Readings
from pooldoctor.readings.leak import leak_evidence, leak_severity

CHECK = "connection-leak"


def check(readings: Readings) -> list[Finding]:
    """The leak signature as a finding; diagnosis.arbitrate discounts it when a deadlock or an
    async cancellation explains the same held connections better."""
    signature = readings.leak
    if signature is None:
        return []
    summary = leak_summary(readings, signature)
    if signature.pool.has_data:
        summary = f"{signature.pool.describe()}; {summary}"
    title = (
        "Connection leak: connections are checked out and never returned"
        if signature.current
        else "Past connection leak warnings (history)"
    )
    return [
        finding(
            CHECK,
            readings.label,
            severity=leak_severity(signature),
            confidence=signature.confidence,
            title=title,
            summary=summary,
            evidence=leak_evidence(signature),
            remediation=tuple(leak_remediation(readings, signature)),
        )
    ]


SPEC = CheckSpec(
    CHECK,
    (CHECK,),
    "App transactions unchanged across samples past the app's own baseline (p99 request, "
    "pool_timeout) while others time out; the app-log exception that opened them; finished or "
    "old holders; GC cleanup warnings.",
    check,
)
