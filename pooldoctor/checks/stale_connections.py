"""stale-connections: pooled connections closed underneath the pool fail on first use."""

from __future__ import annotations

from pooldoctor.checks.common import finding, log_finding
from pooldoctor.checks.spec import CheckSpec
from pooldoctor.durations import format_duration
from pooldoctor.evidence import Evidence, LogEvent
from pooldoctor.findings import Finding, Role, Severity
from pooldoctor.readings import Readings

CHECK = "stale-connections"
RECYCLE_MARGIN = 0.8  # recycle at 80% of the shortest idle kill, before the server acts
DEFAULT_RECYCLE_SECONDS = 1800  # a safe pool_recycle when no idle kill is known
LOST_KEYS = ("connections_lost",)
PROXY_MARKERS = ("client_idle_timeout", "server conn crashed", "server_idle_timeout")


def _lost_connections(evidence: Evidence) -> float:
    lost = 0.0
    for instance in evidence.pools:
        if len(instance.samples) >= 2:
            first, last = instance.samples[0].counters, instance.samples[-1].counters
            lost += sum(last.get(k, 0.0) - first.get(k, 0.0) for k in LOST_KEYS)
        elif instance.samples:
            lost += sum(instance.samples[-1].counters.get(k, 0.0) for k in LOST_KEYS)
    return lost


def _recycle_advice(idle_kill: float | None) -> str:
    if idle_kill:
        recycle = int(idle_kill * RECYCLE_MARGIN)
        return (
            f"pool_pre_ping=True and pool_recycle={recycle} (80% of the "
            f"{format_duration(idle_kill)} server idle_session_timeout)"
        )
    return (
        f"pool_pre_ping=True and pool_recycle={DEFAULT_RECYCLE_SECONDS} (below proxy/LB idle kills)"
    )


def check(readings: Readings) -> list[Finding]:
    evidence = readings.evidence
    signal = readings.log(
        LogEvent.SERVER_CLOSED,
        LogEvent.IDLE_SESSION_TIMEOUT,
        LogEvent.ADMIN_SHUTDOWN,
        LogEvent.INVALID_TRANSACTION,
    )
    proxy = readings.log(LogEvent.PGBOUNCER, matching=PROXY_MARKERS)
    restarts = readings.log(LogEvent.SERVER_START, LogEvent.SERVER_SHUTDOWN)
    pool = readings.pool
    config = evidence.config
    idle_kill = readings.setting_seconds("idle_session_timeout") or None
    pre_ping = config.pool_pre_ping if config is not None else None
    recycle = config.pool_recycle if config is not None else None
    label = readings.label
    lost = _lost_connections(evidence)
    reasons: list[str] = []
    confidence = 0.6
    if proxy.current:
        reasons.append(proxy.describe("PgBouncer idle/crash disconnects"))
    if restarts.seen:
        reasons.append(restarts.describe("server restarts"))
        confidence += 0.1
    if lost > 0:
        reasons.append(f"psycopg_pool connections_lost grew by {lost:.0f}")
        confidence += 0.1
    if pre_ping is not True:
        reasons.append("pool_pre_ping is not enabled")
        confidence += 0.1
    if idle_kill:
        reasons.append(f"server idle_session_timeout {format_duration(idle_kill)}")
    if pool.full_now:
        confidence -= 0.2
        reasons.append("the pool is exhausted too: stale connections do not cause that")
    steps = [
        _recycle_advice(idle_kill),
        "libpq keepalives: keepalives_idle=30 keepalives_interval=10 keepalives_count=3 (not for "
        "asyncpg, which sends them to the server as settings and fails: use the server's "
        "tcp_keepalives_* instead)",
        "Do not set idle_session_timeout for roles that use a client-side pool",
    ]
    logged = signal if signal.seen else proxy
    found = log_finding(
        check=CHECK,
        label=label,
        signal=logged,
        what="connections closed under the pool (server closed / idle-session / admin shutdown)",
        title="Stale connections: the pool hands out connections the server already closed",
        severity=Severity.WARNING,
        confidence=confidence,
        reasons=reasons,
        evidence={"connections_lost": lost, "idle_session_timeout_seconds": idle_kill},
        remediation=steps,
    )
    if found is not None:
        return [found]
    if lost > 0:
        return [
            finding(
                CHECK,
                label,
                severity=Severity.WARNING,
                confidence=min(confidence, 0.9),
                title="Stale connections: the pool loses connections the server closed",
                summary="; ".join(reasons),
                evidence={"connections_lost": lost},
                remediation=tuple(steps),
            )
        ]
    recycle_too_long = (
        recycle is None or recycle <= 0 or (idle_kill is not None and recycle >= idle_kill)
    )
    if idle_kill and pre_ping is not True and recycle_too_long:
        return [
            finding(
                CHECK,
                f"{label}:config",
                severity=Severity.WARNING,
                confidence=0.8,
                title="Pool will hand out connections the server's idle timeout has closed",
                summary=(
                    f"server idle_session_timeout {format_duration(idle_kill)} but pool_recycle "
                    f"{'unset' if recycle is None else format_duration(recycle)} "
                    "and no pool_pre_ping"
                ),
                role=Role.RISK,
                evidence={"idle_session_timeout_seconds": idle_kill, "pool_recycle": recycle},
                remediation=tuple(steps),
            )
        ]
    return []


SPEC = CheckSpec(
    CHECK,
    (CHECK,),
    "Connections closed under the pool; pool_recycle/pre_ping against idle_session_timeout.",
    check,
)
