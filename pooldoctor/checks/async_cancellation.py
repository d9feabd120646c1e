"""async-cancellation-leak: a leak that follows cancelled asyncio tasks (client disconnects)."""

from __future__ import annotations

from pooldoctor.checks.common import app_label
from pooldoctor.checks.connection_leak import (
    cancellation_hints,
    leak_evidence,
    leak_remediation,
    leak_severity,
    leak_signature,
)
from pooldoctor.evidence import Evidence
from pooldoctor.findings import Finding

CHECK = "async-cancellation-leak"
RUNBOOK = "async-cancellation-leak"


def check(evidence: Evidence) -> list[Finding]:
    signature = leak_signature(evidence)
    if signature is None:
        return []
    hints = cancellation_hints(evidence, signature)
    if not hints:
        return []
    label = app_label(evidence)
    steps = leak_remediation(evidence, signature)
    steps[-1:-1] = [
        "Upgrade SQLAlchemy (cancellation fixes: #8145, #6652, #12077) and asyncpg",
        "Shield connection cleanup from cancellation (asyncio.shield around close) and avoid "
        "middleware that cancels the request task on client disconnect",
    ]
    return [
        Finding(
            id=f"{CHECK}:{label}",
            check=CHECK,
            severity=leak_severity(signature),
            confidence=round(min(0.97, signature.confidence + 0.05 * len(hints)), 2),
            title="Async cancellation leak: cancelled tasks leave connections checked out",
            summary="; ".join([*signature.reasons, *hints]),
            runbook=RUNBOOK,
            evidence={**leak_evidence(signature), "cancellation_hints": hints},
            remediation=tuple(steps),
        )
    ]
