"""The app's identity in pg_stat_activity and the other clients around it."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pooldoctor.evidence import ActivitySample, Backend, Evidence, PoolInstance, PostgresEvidence
from pooldoctor.readings.thresholds import MAX_LISTED, MIN_APP_BACKENDS

SELF_APP = "pooldoctor"
MAINTENANCE_APPS = (
    "pg_dump",
    "pg_dumpall",
    "pg_basebackup",
    "pg_restore",
    "pg_rewind",
    "pg_receivewal",
    "pg_repack",
    "psql",
    "pgadmin",
    "vacuumdb",
    "reindexdb",
    "autovacuum",
    "walreceiver",
    "walsender",
)
CLIENT_BACKEND_TYPES = (None, "client backend")
IDLE = "idle"
IDLE_IN_TRANSACTION = ("idle in transaction", "idle in transaction (aborted)")
ACTIVE = "active"
# "billing-api-2", "worker_3", "web.7": one process of a fleet numbered by instance.
_INSTANCE_NUMBER = re.compile(r"[-_.:]\d+$")


def fleet_name(application_name: str) -> str:
    """The application_name without a trailing instance number: 'billing-api-2' -> 'billing-api'."""
    return _INSTANCE_NUMBER.sub("", application_name)


def is_client(backend: Backend) -> bool:
    """A client session, not a background worker (autovacuum, walsender, ...)."""
    return backend.backend_type in CLIENT_BACKEND_TYPES


def client_backends(sample: ActivitySample) -> list[Backend]:
    """Client sessions of a snapshot (no background workers)."""
    return [b for b in sample.backends if b.backend_type in CLIENT_BACKEND_TYPES]


def is_self(backend: Backend) -> bool:
    return (backend.application_name or "").lower().startswith(SELF_APP)


def is_maintenance(backend: Backend) -> bool:
    name = (backend.application_name or "").lower()
    return any(name.startswith(tool) for tool in MAINTENANCE_APPS)


@dataclass(frozen=True)
class AppIdentity:
    """How the app's own backends are recognised in pg_stat_activity, and why."""

    application_name: str | None
    usename: str | None
    backends_seen: int
    reason: str
    role: str | None = None  # the role most of the app's backends log in as
    by_pool_evidence: bool = False  # chosen over a busier client because its sessions match

    @property
    def label(self) -> str:
        if self.application_name:
            return f"application '{self.application_name}'"
        return f"unnamed application of user '{self.usename}'"

    @property
    def short(self) -> str:
        return self.application_name or self.usename or "app"

    def matches(self, backend: Backend) -> bool:
        if backend.backend_type not in CLIENT_BACKEND_TYPES or is_self(backend):
            return False
        if self.application_name:
            return backend.application_name == self.application_name
        return not backend.application_name and backend.usename == self.usename

    def same_fleet(self, backend: Backend) -> bool:
        """Another numbered process of the app: 'api-2' beside 'api-1', same role."""
        name = backend.application_name
        if not self.application_name or not name or name == self.application_name:
            return False
        stem = fleet_name(self.application_name)
        return (
            stem != self.application_name
            and fleet_name(name) == stem
            and (self.role is None or backend.usename == self.role)
        )

    def as_evidence(self) -> dict[str, Any]:
        return {
            "application_name": self.application_name,
            "usename": self.usename,
            "role": self.role,
            "chosen_because": self.reason,
        }


def identify_app(
    pg: PostgresEvidence | None,
    named: str | None = None,
    pools: Sequence[PoolInstance] = (),
    workers: int | None = None,
) -> AppIdentity | None:
    """The app = the application_name its config names (`named`) when it has backends; else the
    application_name (else role) whose sessions match the pool-status samples (in use = checked
    out, within size + max_overflow per process) in the most rounds; the count of client
    backends decides only when that does not. Pooldoctor and maintenance tools are never it."""
    if pg is None or not pg.samples:
        return None
    if named:
        own = [
            b for s in pg.samples for b in client_backends(s)
            if b.application_name == named and not is_self(b)
        ]  # fmt: skip
        if own:
            role = Counter(b.usename or "" for b in own).most_common(1)[0][0] or None
            reason = "the application_name its config sets"
            return AppIdentity(named, None, len(own), reason, role)
    picked = _pick(pg, pools, workers)
    if picked is None:
        return None
    (name, user), seen, reason, by_pools = picked
    roles: Counter[str] = Counter(
        b.usename or "" for s in pg.samples for b in client_backends(s)
        if (b.application_name or "") == name and (name or (b.usename or "") == user)
    )  # fmt: skip
    role = roles.most_common(1)[0][0] or None
    return AppIdentity(name or None, user or None, seen, reason, role, by_pools)


@dataclass(frozen=True)
class _PoolRound:
    """The pools' state nearest one pg_stat_activity sample, summed over the sampled instances."""

    checked_out: int
    capacity: int | None  # (size + max_overflow) x processes; None when unbounded or unknown
    all_processes: bool  # every process of the app is sampled (instances >= configured workers)


def _pool_rounds(
    samples: Sequence[ActivitySample], pools: Sequence[PoolInstance], workers: int | None
) -> list[_PoolRound | None]:
    sampled = [i for i in pools if any(s.checked_out is not None for s in i.samples)]
    processes = max(len(sampled), workers or 0)
    rounds: list[_PoolRound | None] = []
    for activity in samples:
        nearest = [
            min(
                (s for s in i.samples if s.checked_out is not None),
                key=lambda s: abs((s.at - activity.at).total_seconds()),
            )
            for i in sampled
        ]
        if not nearest:
            rounds.append(None)
            continue
        checked_out = sum(s.checked_out or 0 for s in nearest)
        per_process = [
            s.size + max(s.max_overflow, 0)
            for s in nearest
            if s.size is not None and s.max_overflow is not None and s.max_overflow >= 0
        ]
        capacity = max(per_process) * processes if len(per_process) == len(nearest) else None
        rounds.append(_PoolRound(checked_out, capacity, len(sampled) >= processes))
    return rounds


def _consistent(in_use: int, total: int, pool: _PoolRound) -> bool:
    """The candidate's sessions are what the pools report: exactly the checked-out count when
    every process is sampled, else at least it and within the fleet's capacity."""
    if pool.capacity is not None and total > pool.capacity:
        return False
    if pool.all_processes:
        return in_use == pool.checked_out
    return in_use >= pool.checked_out


def _pick(
    pg: PostgresEvidence, pools: Sequence[PoolInstance], workers: int | None
) -> tuple[tuple[str, str], int, str, bool] | None:
    """The candidate (name, user), its backends seen, why it was chosen, and whether the pool
    samples (not the count) decided."""
    tally: Counter[tuple[str, str]] = Counter()
    per_sample: list[Counter[tuple[str, str]]] = []
    in_use: list[Counter[tuple[str, str]]] = []
    for sample in pg.samples:
        totals: Counter[tuple[str, str]] = Counter()
        busy: Counter[tuple[str, str]] = Counter()
        for backend in client_backends(sample):
            if is_self(backend) or is_maintenance(backend):
                continue
            name = backend.application_name or ""
            key = (name, "" if name else backend.usename or "")
            totals[key] += 1
            busy[key] += backend.state != IDLE
        tally.update(totals)
        per_sample.append(totals)
        in_use.append(busy)
    if not tally:
        return None
    by_count = min(tally.items(), key=lambda item: (-item[1], item[0]))[0]
    rounds = _pool_rounds(pg.samples, pools, workers)
    judged = sum(r is not None for r in rounds)
    matched = {
        key: sum(
            1
            for r, totals, busy in zip(rounds, per_sample, in_use, strict=True)
            if r is not None and _consistent(busy[key], totals[key], r)
        )
        for key in tally
    }
    best = min(tally, key=lambda key: (-matched[key], -tally[key], key))
    count_reason = (
        f"most client backends ({tally[by_count] / len(pg.samples):.0f} per sample), excluding "
        f"pooldoctor and maintenance tools ({', '.join(MAINTENANCE_APPS[:4])}, ...)"
    )
    if not judged or matched[best] == matched[by_count]:
        return by_count, tally[by_count], count_reason, False
    last = next(r for r in reversed(rounds) if r is not None)
    reason = (
        f"its sessions match the pool-status samples in {matched[best]} of {judged} rounds "
        f"({in_use[-1][best]} in use vs {last.checked_out} checked out"
        + (f", capacity {last.capacity}" if last.capacity is not None else "")
        + f"); {_describe(by_count)} has more sessions ({tally[by_count] / len(pg.samples):.0f}"
        f" per sample) but matches in {matched[by_count]} of {judged}"
    )
    return best, tally[best], reason, True


def _describe(key: tuple[str, str]) -> str:
    name, user = key
    return f"application '{name}'" if name else f"unnamed application of user '{user}'"


def configured_app_name(evidence: Evidence) -> str | None:
    return evidence.config.application_name if evidence.config is not None else None


def app_identity(evidence: Evidence) -> AppIdentity | None:
    """identify_app with everything the evidence offers: the configured name, the pool samples
    and the configured worker count."""
    workers = evidence.config.workers if evidence.config is not None else None
    return identify_app(evidence.postgres, configured_app_name(evidence), evidence.pools, workers)


def enough_app_backends(count: int, capacity: int | None) -> bool:
    """Enough app backends to judge: MIN_APP_BACKENDS, or a whole (small) pool's worth."""
    needed = MIN_APP_BACKENDS if not capacity else min(MIN_APP_BACKENDS, capacity)
    return count >= max(1, needed)


def app_backends(sample: ActivitySample, app: AppIdentity) -> list[Backend]:
    return [b for b in sample.backends if app.matches(b)]


def other_clients(sample: ActivitySample, app: AppIdentity | None) -> list[Backend]:
    """Client backends that are neither the app (nor its numbered processes) nor pooldoctor."""
    return [
        b
        for b in client_backends(sample)
        if not is_self(b) and (app is None or not (app.matches(b) or app.same_fleet(b)))
    ]


def describe_sessions(backends: Iterable[Backend]) -> list[dict[str, Any]]:
    """Group sessions by (application_name, role): counts and pids, for a finding's evidence."""
    groups: dict[tuple[str, str], list[int]] = {}
    for backend in backends:
        key = (backend.application_name or "", backend.usename or "")
        groups.setdefault(key, []).append(backend.pid)
    return [
        {"application_name": name, "usename": user, "count": len(pids), "pids": pids[:MAX_LISTED]}
        for (name, user), pids in sorted(groups.items(), key=lambda item: -len(item[1]))
    ]
