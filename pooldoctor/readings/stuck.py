"""Work still in progress at collection: open transactions, long queries, lock waits and their
root blockers, and checkouts the app reported as held."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pooldoctor.durations import format_duration
from pooldoctor.evidence import ActivitySample, Backend, PoolInstance, PostgresEvidence
from pooldoctor.jsonio import as_utc
from pooldoctor.readings.app import ACTIVE, IDLE_IN_TRANSACTION, is_client, is_self
from pooldoctor.readings.locks import LockChains, LockReading
from pooldoctor.readings.sessions import transaction_start
from pooldoctor.readings.text import instance_label, preview
from pooldoctor.readings.thresholds import SLOW_QUERY_SECONDS, STUCK_SECONDS

# Idle time is worth stating separately only when the transaction did work well after it began.
IDLE_DETAIL_MIN_SECONDS = 5.0
# Why a transaction younger than STUCK_SECONDS is listed: the leak reading claims it.
LEAKED = "leaked: held past the app's own baseline"


@dataclass(frozen=True)
class StuckWork:
    """One piece of work that began before collection and had not finished when seen."""

    started: datetime
    inferred: bool
    what: str  # transaction | query | lock wait | checkout
    who: str  # "pid 4242 (api)" or the checkout origin
    source: str
    seen_at: datetime
    detail: str
    connected: datetime | None = None  # backend_start, for sessions
    pid: int | None = None  # the session's pid; None for a checkout
    blocks: int = 0  # lock waiters behind it when it is a root blocker (shown whatever its age)

    @property
    def age_seconds(self) -> float:
        return (self.seen_at - self.started).total_seconds()


def backend_label(backend: Backend) -> str:
    """pid 4242 (api) — the application name, else user@database, when known."""
    if backend.application_name:
        return f"pid {backend.pid} ({backend.application_name})"
    if backend.usename:
        where = f"@{backend.datname}" if backend.datname else ""
        return f"pid {backend.pid} ({backend.usename}{where})"
    return f"pid {backend.pid}"


def latest_activity(pg: PostgresEvidence | None) -> ActivitySample | None:
    """The last pg_stat_activity snapshot: the state of the server at collection time."""
    if pg is None or not pg.samples:
        return None
    return max(pg.samples, key=lambda sample: as_utc(sample.at))


def query_preview(backend: Backend) -> str:
    """The session's query as the report quotes it, or why there is none."""
    if backend.query_hidden:
        return "query hidden (insufficient privilege)"
    return preview(backend.query) or "no query text"


def root_blocker_of(waiters: int) -> str:
    return f"root blocker of {waiters} lock waiter{'s' if waiters != 1 else ''}"


def _work(
    backend: Backend,
    started: datetime,
    what: str,
    seen: datetime,
    detail: str,
    *,
    inferred: bool = False,
    blocks: int = 0,
) -> StuckWork:
    """One session's stuck work, seen in the snapshot taken at `seen`."""
    return StuckWork(
        started=as_utc(started),
        inferred=inferred,
        what=what,
        who=backend_label(backend),
        source="postgres",
        seen_at=seen,
        detail=detail,
        connected=backend.backend_start and as_utc(backend.backend_start),
        pid=backend.pid,
        blocks=blocks,
    )


def _lock_wait(waiter: Backend, seen: datetime) -> StuckWork | None:
    if waiter.query_start is None:
        return None
    blockers = ", ".join(str(pid) for pid in waiter.blocking_pids) or "unknown"
    detail = (
        f"waiting on {waiter.wait_event or 'a lock'}, blocked by pid {blockers}: "
        f"{query_preview(waiter)}"
    )
    return _work(waiter, waiter.query_start, "lock wait", seen, detail, inferred=True)


def _open_transaction(
    backend: Backend, seen: datetime, blocks: int, leaked: bool = False
) -> StuckWork | None:
    started = transaction_start(backend)
    if started is None:
        return None
    if not (blocks or leaked) and seen - as_utc(started) < timedelta(seconds=STUCK_SECONDS):
        return None
    idle_for = ""
    if backend.state_change is not None:
        idle = as_utc(backend.state_change)
        if idle - as_utc(started) > timedelta(seconds=IDLE_DETAIL_MIN_SECONDS):
            idle_for = f" for the last {format_duration((seen - idle).total_seconds())}"
    root = f"{root_blocker_of(blocks)}; " if blocks else ""
    root += f"{LEAKED}; " if leaked else ""
    detail = f"{root}{backend.state}{idle_for}; last query: {query_preview(backend)}"
    return _work(backend, started, "transaction", seen, detail, blocks=blocks)


def _running_query(backend: Backend, seen: datetime, blocks: int) -> StuckWork | None:
    started = backend.query_start
    if started is None:
        return None
    if not blocks and seen - as_utc(started) < timedelta(seconds=SLOW_QUERY_SECONDS):
        return None
    root = f"{root_blocker_of(blocks)}: " if blocks else ""
    return _work(backend, started, "query", seen, root + query_preview(backend), blocks=blocks)


def _root_work(backend: Backend, seen: datetime, blocks: int) -> StuckWork | None:
    """A root blocker, whatever its age or owner: it is the cause of the waits behind it."""
    if backend.state == ACTIVE:
        return _running_query(backend, seen, blocks)
    return _open_transaction(backend, seen, blocks)


def stuck_sessions(
    sample: ActivitySample | None,
    chains: LockChains | None,
    leaked: frozenset[int] = frozenset(),
) -> list[StuckWork]:
    """Sessions of `sample` with an old idle transaction, a long query or a lock wait (as the
    lock chains of the same sample count them), every root blocker of those waits, and every
    transaction the leak reading claims (`leaked`: judged against the app's own baseline)."""
    if sample is None:
        return []
    seen = as_utc(sample.at)
    chains = chains if chains is not None and chains.sample is sample else None
    waiting = {b.pid for b in chains.waiters} if chains is not None else set()
    roots = dict(chains.roots) if chains is not None else {}
    found: list[StuckWork | None] = []
    for backend in sample.backends:
        if backend.pid in roots:
            found.append(_root_work(backend, seen, len(roots[backend.pid])))
        elif not is_client(backend) or is_self(backend):
            continue
        elif backend.pid in waiting:
            found.append(_lock_wait(backend, seen))
        elif backend.wait_event_type == "Lock":
            continue  # a short wait: ordinary row-lock queuing, not contention
        elif backend.state in IDLE_IN_TRANSACTION:
            found.append(_open_transaction(backend, seen, 0, backend.pid in leaked))
        elif backend.state == ACTIVE:
            found.append(_running_query(backend, seen, 0))
    return sorted((w for w in found if w is not None), key=lambda work: work.started)


def _held_checkouts(instance: PoolInstance) -> list[StuckWork]:
    with_holders = [sample for sample in instance.samples if sample.holders]
    if not with_holders:
        return []
    sample = max(with_holders, key=lambda s: as_utc(s.at))
    seen = as_utc(sample.at)
    return [
        StuckWork(
            seen - timedelta(seconds=holder.age_seconds),
            True,
            "checkout",
            holder.origin,
            instance_label(instance.url),
            seen,
            f"thread {holder.thread}" if holder.thread else "",
        )
        for holder in sample.holders
    ]


def held_checkouts(pools: tuple[PoolInstance, ...]) -> list[StuckWork]:
    """Checkouts the app reported as still held, dated collected-at minus age (oldest first)."""
    found = [work for instance in pools for work in _held_checkouts(instance)]
    return sorted(found, key=lambda work: work.started)


@dataclass(frozen=True)
class StuckReading:
    """Work still in progress at collection, oldest first."""

    sessions: tuple[StuckWork, ...]  # from the latest pg_stat_activity snapshot
    checkouts: tuple[StuckWork, ...]  # from each instance's latest sample listing holders

    @property
    def all(self) -> tuple[StuckWork, ...]:
        return self.sessions + self.checkouts

    def root_blockers(self) -> tuple[StuckWork, ...]:
        return tuple(work for work in self.sessions if work.blocks)


def read_stuck(
    latest: ActivitySample | None,
    locks: LockReading,
    pools: tuple[PoolInstance, ...],
    leaked: frozenset[int],
) -> StuckReading:
    """The stuck sessions of the latest snapshot and the held checkouts of every instance."""
    return StuckReading(
        tuple(stuck_sessions(latest, locks.last, leaked)), tuple(held_checkouts(pools))
    )
