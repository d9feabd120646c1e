"""Lock chains: who waits on a lock, and the root blocker at the end of each chain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pooldoctor.evidence import ActivitySample, Backend, PostgresEvidence
from pooldoctor.readings.app import client_backends
from pooldoctor.readings.sessions import seconds_between

LOCK_WAIT_MIN_SECONDS = 1.0  # shorter waits are ordinary row-lock queuing, not contention
PREPARED_XACT_PID = 0  # pg_blocking_pids reports 0 for a prepared transaction


def lock_waiters(sample: ActivitySample) -> list[Backend]:
    """Client sessions waiting on a lock for at least LOCK_WAIT_MIN_SECONDS, with blockers."""
    return [
        b
        for b in client_backends(sample)
        if b.wait_event_type == "Lock"
        and b.blocking_pids
        and (seconds_between(sample.at, wait_began(b)) or 0.0) >= LOCK_WAIT_MIN_SECONDS
    ]


def wait_began(waiter: Backend) -> datetime | None:
    """pg_locks.waitstart (PostgreSQL 14+), else when the waiting statement last changed state."""
    return waiter.lock_wait_start or waiter.state_change or waiter.query_start


def root_blockers(sample: ActivitySample, waiters: Sequence[Backend]) -> dict[int, list[int]]:
    """Root blocker pid -> waiter pids: follow blocking_pids to sessions not blocked themselves."""
    by_pid = {b.pid: b for b in sample.backends}
    roots: dict[int, list[int]] = {}
    for waiter in waiters:
        stack, seen = list(waiter.blocking_pids), {waiter.pid}
        while stack:
            pid = stack.pop()
            if pid in seen:
                continue
            seen.add(pid)
            blocker = by_pid.get(pid)
            if blocker is not None and blocker.wait_event_type == "Lock" and blocker.blocking_pids:
                stack.extend(blocker.blocking_pids)
            else:
                roots.setdefault(pid, []).append(waiter.pid)
    return roots


@dataclass(frozen=True)
class LockChains:
    """Lock waits in one pg_stat_activity snapshot and the root blocker of each chain."""

    sample: ActivitySample
    waiters: tuple[Backend, ...]
    roots: tuple[tuple[int, tuple[int, ...]], ...]  # (root pid, waiter pids), most waiters first

    def root_pids(self) -> tuple[int, ...]:
        return tuple(pid for pid, _ in self.roots)


def lock_chains(sample: ActivitySample) -> LockChains | None:
    """The snapshot's lock chains; None when no session waits long enough on a lock."""
    waiters = lock_waiters(sample)
    if not waiters:
        return None
    roots = sorted(root_blockers(sample, waiters).items(), key=lambda item: -len(item[1]))
    return LockChains(sample, tuple(waiters), tuple((pid, tuple(w)) for pid, w in roots))


@dataclass(frozen=True)
class LockReading:
    """Lock chains over every pg_stat_activity sample; the latest one with waiters decides."""

    chains: tuple[LockChains, ...]  # samples with lock waiters, in sample order
    samples: int  # pg_stat_activity samples in all
    current: bool  # the latest snapshot has lock waiters (else the queue has drained)

    @property
    def last(self) -> LockChains | None:
        """The latest snapshot with lock waiters (not necessarily the latest snapshot)."""
        return self.chains[-1] if self.chains else None

    def persistent_roots(self) -> list[int]:
        """Root blockers of the latest chains that were root blockers in at least two samples."""
        last = self.last
        if last is None:
            return []
        return [
            pid for pid in last.root_pids() if sum(pid in c.root_pids() for c in self.chains) >= 2
        ]


def read_locks(pg: PostgresEvidence | None) -> LockReading:
    """Lock chains of every sample that has lock waiters."""
    samples = pg.samples if pg is not None else ()
    chains = tuple(c for s in samples if (c := lock_chains(s)) is not None)
    current = bool(chains) and chains[-1].sample is samples[-1]
    return LockReading(chains, len(samples), current)
