"""failover-read-only: writes fail with 25006: a demoted primary, or a primary set read-only."""

from __future__ import annotations

from pooldoctor.checks.common import log_finding
from pooldoctor.checks.spec import CheckSpec
from pooldoctor.evidence import LogEvent
from pooldoctor.findings import Finding, Severity
from pooldoctor.readings import Readings

CHECK = "failover-read-only"
READ_ONLY_SETTING = "default_transaction_read_only"  # reset_val: what a fresh session gets

FAILOVER_STEPS = (
    "Make the pooled connections reconnect to the new primary, least disruptive first: behind "
    "PgBouncer, point its [databases] entry at the new primary and `RELOAD;` on its admin "
    "console (server connections move as their clients release them; `RECONNECT;` when the "
    "address stays the same, e.g. a VIP); clients stay connected; else engine.dispose() in each "
    "worker, or a rolling restart of the app",
    "If they reconnect to the old server, a cached DNS answer is the cause: the host's resolver "
    "cache, or PgBouncer's dns_max_ttl; until it expires point the DSN at the new primary",
    "Add target_session_attrs=read-write to the DSN so connects skip a standby",
    "Add a handle_error listener that treats SQLSTATE 25006 as a disconnect "
    "(context.is_disconnect = True; on an AsyncEngine listen on engine.sync_engine) and set "
    "pool_recycle",
)
READ_ONLY_PRIMARY_STEPS = (
    "Do not recycle the pool: this primary refuses writes itself (default_transaction_read_only "
    "= on), so every new connection is read-only too; managed services set it when the disk is "
    "full: free disk space (or grow the volume) first",
    "Find where it is set (pg_settings.source; pg_db_role_setting for a database or role): a "
    "managed service lifts its own once the disk has room; one set by hand is reset where it was "
    "set (ALTER ROLE/DATABASE values reach new sessions only)",
)


def check(readings: Readings) -> list[Finding]:
    evidence = readings.evidence
    signal = readings.log(LogEvent.READ_ONLY)
    pg = evidence.postgres
    read_only = pg is not None and pg.settings.get(READ_ONLY_SETTING) == "on"
    in_recovery = pg.in_recovery if pg is not None else None
    read_only_primary = read_only and not in_recovery
    reasons = []
    confidence = 0.7
    if in_recovery:
        confidence += 0.2
        reasons.append(
            "the server pooldoctor reached is a standby (pg_is_in_recovery()): the DSN or DNS "
            "still leads to the demoted primary"
        )
    elif read_only_primary:
        confidence += 0.2
        reasons.append(
            "the sampled server is not in recovery but has default_transaction_read_only = on: "
            "no failover, the server refuses writes itself"
        )
    restarts = readings.log(LogEvent.SERVER_START, LogEvent.SERVER_SHUTDOWN)
    if restarts.current:
        reasons.append(restarts.describe("server start/stop events"))
    finding = log_finding(
        check=CHECK,
        label=readings.label,
        signal=signal,
        what="writes refused as read-only (25006)",
        title=(
            "Writes fail: the primary is set read-only (default_transaction_read_only)"
            if read_only_primary
            else "Writes fail after a failover: pooled connections reach a read-only server"
        ),
        severity=Severity.CRITICAL,
        confidence=confidence,
        reasons=reasons,
        evidence={"default_transaction_read_only": read_only, "in_recovery": in_recovery},
        remediation=READ_ONLY_PRIMARY_STEPS if read_only_primary else FAILOVER_STEPS,
    )
    return [finding] if finding else []


SPEC = CheckSpec(
    CHECK,
    (CHECK,),
    "Writes refused as read-only (25006); the sampled server in recovery or set read-only.",
    check,
)
