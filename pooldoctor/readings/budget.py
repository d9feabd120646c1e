"""The configuration budget: Little's law pool sizes and the server's connection slots."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pooldoctor.evidence import Evidence, PoolSample
from pooldoctor.readings import pgbouncer
from pooldoctor.readings.app import AppIdentity, describe_sessions, other_clients
from pooldoctor.readings.exporter import exporter_servers
from pooldoctor.readings.pools import Throughput
from pooldoctor.readings.settings import setting_int

HEADROOM = 1.3  # 30% above the Little's-law mean absorbs bursts without over-reserving slots
POOL_SHARE = 2 / 3  # of a per-process budget kept open as pool_size; the rest is max_overflow
DEFAULT_SUPERUSER_RESERVED = 3  # PostgreSQL's default superuser_reserved_connections


def littles_law_size(throughput: Throughput) -> int | None:
    """Connections needed = checkouts/s x mean hold time, plus headroom; None if hold unknown."""
    if throughput.hold_seconds is None or throughput.per_second <= 0:
        return None
    return max(1, math.ceil(throughput.per_second * throughput.hold_seconds * HEADROOM))


def split_pool(total: int) -> tuple[int, int]:
    """Split a per-process connection budget into (pool_size, max_overflow)."""
    if total <= 1:
        return max(total, 1), 0
    pool_size = max(1, math.ceil(total * POOL_SHARE))
    return pool_size, total - pool_size


@dataclass(frozen=True)
class ServerBudget:
    """Connection slots the app may use: max_connections minus reserved minus other clients."""

    max_connections: int
    superuser_reserved: int
    reserved: int
    other_clients: int
    processes: int | None
    per_process: int | None
    per_process_source: str
    other_sessions: tuple[dict[str, Any], ...]
    server_source: str = "pg_stat_activity"  # or "postgres_exporter <instance>" without --dsn

    @property
    def available(self) -> int:
        return max(
            0, self.max_connections - self.superuser_reserved - self.reserved - self.other_clients
        )

    @property
    def demand(self) -> int | None:
        if self.processes is None or self.per_process is None:
            return None
        return self.processes * self.per_process

    @property
    def fits(self) -> bool | None:
        return None if self.demand is None else self.demand <= self.available

    def per_process_fit(self) -> int | None:
        if not self.processes:
            return None
        return self.available // self.processes

    def arithmetic(self) -> str:
        """'16 workers x (20+10) = 480 > 97 available (100 max_connections - 3 reserved ...)'."""
        parts = [f"{self.max_connections} max_connections", f"{self.superuser_reserved} superuser"]
        if self.reserved:
            parts.append(f"{self.reserved} reserved")
        parts.append(f"{self.other_clients} other clients")
        budget = f"{self.available} available ({' - '.join(parts)}"
        if self.server_source != "pg_stat_activity":
            budget += f"; from {self.server_source}"
        budget += ")"
        if self.demand is None:
            return budget
        relation = "<=" if self.fits else ">"
        return (
            f"{self.processes} processes x {self.per_process_source} = {self.demand} "
            f"{relation} {budget}"
        )

    def as_evidence(self) -> dict[str, Any]:
        return {
            "max_connections": self.max_connections,
            "superuser_reserved_connections": self.superuser_reserved,
            "reserved_connections": self.reserved,
            "other_clients": self.other_clients,
            "other_sessions": list(self.other_sessions),
            "server_from": self.server_source,
            "available": self.available,
            "processes": self.processes,
            "per_process": self.per_process,
            "demand": self.demand,
            "per_process_fit": self.per_process_fit(),
        }


def app_processes(evidence: Evidence) -> int | None:
    """Processes holding pools: WORKERS/--workers, or at least one per sampled pool endpoint."""
    configured = evidence.config.workers if evidence.config else None
    endpoints = len(evidence.pools)
    if configured is None and not endpoints:
        return None
    return max(configured or 0, endpoints)


def per_process_pool(evidence: Evidence) -> tuple[int | None, str]:
    """(pool_size + max_overflow, how it reads) from the config, else from pool samples."""
    config = evidence.config
    if config is not None and config.pool_size is not None:
        overflow = config.max_overflow if config.max_overflow is not None else 10
        if overflow < 0:
            return None, f"({config.pool_size}+unbounded overflow)"
        return config.pool_size + overflow, f"({config.pool_size}+{overflow})"
    capacities = [cap for i in evidence.pools if i.samples if (cap := i.samples[-1].capacity)]
    if capacities:
        sample = next(i.samples[-1] for i in evidence.pools if i.samples)
        if sample.size is not None and sample.max_overflow is not None:
            return max(capacities), f"({sample.size}+{sample.max_overflow})"
        return max(capacities), f"({max(capacities)})"
    return None, "(unknown pool)"


def server_budget(evidence: Evidence, app: AppIdentity | None) -> ServerBudget | None:
    """The server's slots against the app's demand; behind PgBouncer, against PgBouncer's."""
    pg = evidence.postgres
    max_connections = setting_int(pg, "max_connections")
    if pg is None or max_connections is None:
        return exporter_budget(evidence)
    superuser = setting_int(pg, "superuser_reserved_connections")
    bouncers = pgbouncer.sampled(evidence)
    processes: int | None
    per_process: int | None
    if bouncers:
        # The app's connections reach the server as PgBouncer's: every other client backend,
        # less the server connections PgBouncer holds now, competes for the same slots.
        others = other_clients(pg.samples[-1], None) if pg.samples else []
        held = sum(b.samples[-1].servers_total for b in bouncers)
        other_count = max(0, len(others) - held)
        limits = pgbouncer.fleet_server_limits(evidence)
        processes, per_process = len(bouncers), max(limits)
        source = f"PgBouncer pool sizes ({' + '.join(str(n) for n in limits)} in total)"
        if len(set(limits)) == 1:
            source = f"({limits[0]} server connections per PgBouncer)"
    else:
        others = other_clients(pg.samples[-1], app) if pg.samples else []
        other_count = len(others)
        processes = app_processes(evidence)
        per_process, source = per_process_pool(evidence)
    reserved = setting_int(pg, "reserved_connections") or 0
    if app is not None and app.role in pg.reserved_connection_roles:
        reserved = 0  # PostgreSQL 16+: the app's role may use the reserved_connections slots
    return ServerBudget(
        max_connections=max_connections,
        superuser_reserved=DEFAULT_SUPERUSER_RESERVED if superuser is None else superuser,
        reserved=reserved,
        other_clients=other_count,
        processes=processes,
        per_process=per_process,
        per_process_source=source,
        other_sessions=tuple(describe_sessions(others)),
    )


def _open_connections(sample: PoolSample) -> int:
    """Connections a pool holds open on the server: checked out plus idle in the pool."""
    if sample.checked_out is not None or sample.checked_in is not None:
        return (sample.checked_out or 0) + (sample.checked_in or 0)
    if "pool_size" in sample.counters:  # psycopg_pool and OpenTelemetry counts: every open one
        return int(sample.counters["pool_size"])
    return sample.in_use or 0


def exporter_budget(evidence: Evidence) -> ServerBudget | None:
    """The budget without --dsn, from postgres_exporter's series read through --prometheus.

    Only with exactly one exported server: which server each pool talks to is not in the
    series, so with several the pairing would be a guess. Other clients are the server's
    sessions less the connections the sampled pools (or PgBouncer) hold open.
    """
    servers = exporter_servers(evidence)
    if len(servers) != 1:
        return None
    server = servers[0]
    bouncers = pgbouncer.sampled(evidence)
    processes: int | None
    per_process: int | None
    if bouncers:
        held = sum(b.samples[-1].servers_total for b in bouncers)
        limits = pgbouncer.fleet_server_limits(evidence)
        processes, per_process = len(bouncers), max(limits)
        source = f"PgBouncer pool sizes ({' + '.join(str(n) for n in limits)} in total)"
        if len(set(limits)) == 1:
            source = f"({limits[0]} server connections per PgBouncer)"
    else:
        held = sum(_open_connections(i.samples[-1]) for i in evidence.pools if i.samples)
        processes = app_processes(evidence)
        per_process, source = per_process_pool(evidence)
    return ServerBudget(
        max_connections=server.max_connections,
        superuser_reserved=server.superuser_reserved,
        reserved=0,
        other_clients=max(0, server.sessions - held),
        processes=processes,
        per_process=per_process,
        per_process_source=source,
        other_sessions=(),
        server_source=f"postgres_exporter {server.instance}",
    )


def budget_remedy(budget: ServerBudget) -> str | None:
    """'per process at most 6 connections: pool_size=4, max_overflow=2 (97 // 16)'."""
    fit = budget.per_process_fit()
    if fit is None:
        return None
    if fit < 1:
        return (
            f"{budget.available} slots cannot give {budget.processes} processes one connection "
            "each: run fewer processes now; plan PgBouncer (transaction mode) in front"
        )
    pool_size, overflow = split_pool(fit)
    return (
        f"per-process pool that fits the server: floor({budget.available} / {budget.processes}) "
        f"= {fit} -> pool_size={pool_size}, max_overflow={overflow}"
    )
