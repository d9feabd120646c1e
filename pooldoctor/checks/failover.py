"""failover-read-only: writes fail with 25006 because the pool still talks to a demoted primary."""

from __future__ import annotations

from pooldoctor.checks.common import log_finding
from pooldoctor.checks.spec import CheckSpec
from pooldoctor.evidence import LogEvent
from pooldoctor.findings import Finding, Severity
from pooldoctor.readings import Readings

CHECK = "failover-read-only"
STANDBY_SETTINGS = ("in_hot_standby", "transaction_read_only", "default_transaction_read_only")


def check(readings: Readings) -> list[Finding]:
    evidence = readings.evidence
    signal = readings.log(LogEvent.READ_ONLY)
    pg = evidence.postgres
    read_only = [
        name for name in STANDBY_SETTINGS if pg is not None and pg.settings.get(name) == "on"
    ]
    reasons = []
    confidence = 0.7
    if read_only:
        confidence += 0.2
        reasons.append(f"the sampled server is read-only ({', '.join(read_only)} = on)")
    restarts = readings.log(LogEvent.SERVER_START, LogEvent.SERVER_SHUTDOWN)
    if restarts.current:
        reasons.append(restarts.describe("server start/stop events"))
    finding = log_finding(
        check=CHECK,
        label=readings.label,
        signal=signal,
        what="writes refused as read-only (25006)",
        title="Writes fail after a failover: pooled connections reach a read-only server",
        severity=Severity.CRITICAL,
        confidence=confidence,
        reasons=reasons,
        evidence={"read_only_settings": read_only},
        remediation=(
            "Drop the pool's connections now (engine.dispose() or restart the workers) so they "
            "reconnect to the new primary",
            "Add target_session_attrs=read-write to the DSN so connects skip a standby",
            "Add a handle_error listener that treats SQLSTATE 25006 as a disconnect "
            "(context.is_disconnect = True) and set pool_recycle",
        ),
    )
    return [finding] if finding else []


SPEC = CheckSpec(
    CHECK,
    (CHECK,),
    "Writes refused as read-only (25006), optionally a read-only server.",
    check,
)
