"""Facts from PgBouncer admin-console evidence: effective pool sizes, modes, pinned clients."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pooldoctor.evidence import (
    Evidence,
    PgBouncerDatabase,
    PgBouncerEvidence,
    PgBouncerPool,
    PgBouncerSample,
)

ADMIN_DATABASE = "pgbouncer"
DEFAULT_POOL_SIZE = 20  # PgBouncer's default_pool_size when SHOW CONFIG did not say
DEFAULT_QUERY_WAIT_TIMEOUT = 120.0


def _config_int(bouncer: PgBouncerEvidence, key: str) -> int | None:
    try:
        return int(bouncer.config[key])
    except (KeyError, ValueError):
        return None


def _config_seconds(bouncer: PgBouncerEvidence, key: str) -> float | None:
    raw = bouncer.config.get(key)
    if raw is None:
        return None
    try:
        return float(raw.removesuffix("s"))
    except ValueError:
        return None


@dataclass(frozen=True)
class PoolLimit:
    """How many server connections one PgBouncer may open for one (database, user) pool."""

    pool_size: int
    pool_size_from: str
    reserve: int
    max_db_connections: int | None
    max_user_connections: int | None

    @property
    def base(self) -> int:
        """Server connections before the reserve pool opens."""
        return min((self.pool_size, *self.caps))

    @property
    def effective(self) -> int:
        """Most server connections the pool reaches, reserve included, within the caps."""
        return min((self.pool_size + self.reserve, *self.caps))

    @property
    def caps(self) -> tuple[int, ...]:
        return tuple(c for c in (self.max_db_connections, self.max_user_connections) if c)

    def arithmetic(self) -> str:
        text = f"{self.pool_size_from} {self.pool_size}"
        if self.reserve:
            text += f" + reserve_pool_size {self.reserve}"
        for name, cap in (
            ("max_db_connections", self.max_db_connections),
            ("max_user_connections", self.max_user_connections),
        ):
            if cap:
                text += f", capped by {name} {cap}"
        return f"{text} = {self.effective}"

    def as_evidence(self) -> dict[str, Any]:
        return {
            "pool_size": self.pool_size,
            "pool_size_from": self.pool_size_from,
            "reserve_pool_size": self.reserve,
            "max_db_connections": self.max_db_connections,
            "max_user_connections": self.max_user_connections,
            "effective": self.effective,
        }


def label(bouncer: PgBouncerEvidence) -> str:
    """host:port of a PgBouncer, from its (redacted) key=value or URI DSN."""
    target = bouncer.target
    if "://" in target:
        return urlsplit(target).netloc.rsplit("@", 1)[-1] or target
    words = dict(w.split("=", 1) for w in target.split() if "=" in w)
    host = words.get("host", "")
    return f"{host}:{words['port']}" if host and "port" in words else host or target


def database_row(sample: PgBouncerSample, name: str) -> PgBouncerDatabase | None:
    return next((db for db in sample.databases if db.name == name), None)


def pool_limit(
    bouncer: PgBouncerEvidence, sample: PgBouncerSample, pool: PgBouncerPool
) -> PoolLimit:
    """Effective size from per-user / per-database pool_size, default_pool_size, reserve, caps."""
    database = database_row(sample, pool.database)
    user = bouncer.users.get(pool.user, {})
    size: int | None = None
    source = "default_pool_size"
    if user.get("pool_size", "").lstrip("-").isdigit() and int(user["pool_size"]) > 0:
        size, source = int(user["pool_size"]), f"user {pool.user} pool_size"
    elif database is not None and database.pool_size is not None and database.pool_size >= 0:
        size = database.pool_size
        configured = _config_int(bouncer, "default_pool_size")
        if configured != size:
            source = f"database {pool.database} pool_size"
    if size is None:
        size = _config_int(bouncer, "default_pool_size") or DEFAULT_POOL_SIZE
    reserve = (
        database.reserve_pool
        if database is not None and database.reserve_pool
        else _config_int(bouncer, "reserve_pool_size") or 0
    )
    max_db = (database.max_connections if database is not None else None) or _config_int(
        bouncer, "max_db_connections"
    )
    user_cap = user.get("max_user_connections", "")
    max_user = (int(user_cap) if user_cap.isdigit() else None) or _config_int(
        bouncer, "max_user_connections"
    )
    return PoolLimit(size, source, reserve, max_db or None, max_user or None)


def pool_mode(bouncer: PgBouncerEvidence, sample: PgBouncerSample, pool: PgBouncerPool) -> str:
    """The pool's mode: SHOW POOLS (1.18+), else the user's, database's, or global setting."""
    if pool.pool_mode:
        return pool.pool_mode
    user_mode = bouncer.users.get(pool.user, {}).get("pool_mode")
    database = database_row(sample, pool.database)
    return (
        user_mode
        or (database.pool_mode if database is not None else None)
        or bouncer.config.get("pool_mode", "session")
    )


def app_pools(sample: PgBouncerSample) -> list[PgBouncerPool]:
    """Pools of real databases (the admin console's own pool left out)."""
    return [p for p in sample.pools if p.database != ADMIN_DATABASE]


def sampled(evidence: Evidence) -> list[PgBouncerEvidence]:
    """PgBouncer sources that produced at least one sample."""
    return [b for b in evidence.pgbouncers if b.samples]


def pool_history(bouncer: PgBouncerEvidence, database: str, user: str) -> list[PgBouncerPool]:
    """The (database, user) pool's SHOW POOLS row in each sample that had it."""
    return [
        p for s in bouncer.samples for p in s.pools if p.database == database and p.user == user
    ]


def pools_as_evidence(history: Iterable[PgBouncerPool]) -> dict[str, list[Any]]:
    """SHOW POOLS columns over the samples, oldest first."""
    rows = list(history)
    return {
        "cl_active": [p.cl_active for p in rows],
        "cl_waiting": [p.cl_waiting for p in rows],
        "sv_active": [p.sv_active for p in rows],
        "sv_idle": [p.sv_idle for p in rows],
        "sv_used": [p.sv_used for p in rows],
        "maxwait_seconds": [round(p.maxwait_seconds, 3) for p in rows],
    }


def query_wait_timeout(bouncer: PgBouncerEvidence) -> float:
    """query_wait_timeout in seconds (0 disables it; PgBouncer's default otherwise)."""
    value = _config_seconds(bouncer, "query_wait_timeout")
    return DEFAULT_QUERY_WAIT_TIMEOUT if value is None else value


def idle_linked_clients(
    bouncer: PgBouncerEvidence, database: str, user: str
) -> list[dict[str, Any]]:
    """Clients paired with a server in every sample whose last request never moved: idle holders.

    Compares the first and last sample, so no clock or time zone of PgBouncer is needed."""
    if len(bouncer.samples) < 2:
        return []
    first, last = bouncer.samples[0], bouncer.samples[-1]
    before = {
        c.ptr: c
        for c in first.clients
        if c.ptr and c.link and c.database == database and c.user == user
    }
    idle = []
    for client in last.clients:
        earlier = before.get(client.ptr or "")
        if earlier is None or not client.link or client.database != database:
            continue
        if client.request_time == earlier.request_time and client.link == earlier.link:
            idle.append(
                {
                    "addr": f"{client.addr}:{client.port}",
                    "application_name": client.application_name,
                    "connected": client.connect_time,
                    "last_request": client.request_time,
                    "server": client.link,
                }
            )
    return idle


def version_tuple(version: str | None) -> tuple[int, ...] | None:
    """(1, 18, 0) from 'PgBouncer 1.18.0'."""
    if not version:
        return None
    for word in version.split():
        parts = word.split(".")
        if len(parts) >= 2 and all(p.isdigit() for p in parts):
            return tuple(int(p) for p in parts)
    return None


def fleet_server_limits(evidence: Evidence) -> list[int]:
    """Per PgBouncer instance: server connections its app pools may open (effective sizes)."""
    limits = []
    for bouncer in sampled(evidence):
        latest = bouncer.samples[-1]
        limits.append(sum(pool_limit(bouncer, latest, p).effective for p in app_pools(latest)))
    return limits
