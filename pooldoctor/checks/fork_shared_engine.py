"""fork-shared-engine: pooled sockets inherited across fork corrupt each other's protocol."""

from __future__ import annotations

from pooldoctor.checks.common import log_finding
from pooldoctor.checks.spec import CheckSpec
from pooldoctor.evidence import LogEvent
from pooldoctor.findings import Finding, Severity
from pooldoctor.readings import Readings

CHECK = "fork-shared-engine"
EXHAUSTED_DISCOUNT = 0.6  # SSL errors during pool exhaustion are more likely a side effect


def check(readings: Readings) -> list[Finding]:
    signal = readings.log(LogEvent.SSL_ERROR)
    pool = readings.pool
    confidence = 0.55
    reasons = [
        "intermittent protocol/SSL errors are what two processes sharing one pooled "
        "socket produce (gunicorn --preload, Celery prefork)"
    ]
    if pool.full_now:
        confidence *= EXHAUSTED_DISCOUNT
        reasons.append("the pool is also exhausted, which this failure mode does not cause")
    elif pool.has_data:
        reasons.append("the pool is not exhausted")
    finding = log_finding(
        check=CHECK,
        label=readings.label,
        signal=signal,
        what="SSL/protocol errors (bad record mac, SSL SYSCALL EOF, consuming input failed)",
        title="Connections shared across fork: workers inherit the parent's pooled sockets",
        severity=Severity.WARNING,
        confidence=confidence,
        reasons=reasons,
        remediation=(
            "Stop the bleeding: drop --preload (preload_app = False) and redeploy, so each "
            "worker builds its own engine",
            "Then call engine.dispose(close=False) in the worker initializer (gunicorn post_fork, "
            "Celery worker_process_init; SQLAlchemy >= 1.4.33), or use NullPool in forking "
            "workers",
        ),
    )
    return [finding] if finding else []


SPEC = CheckSpec(
    CHECK,
    (CHECK,),
    "SSL / protocol errors without pool exhaustion: sockets shared across fork.",
    check,
)
