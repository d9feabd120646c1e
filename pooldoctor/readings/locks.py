"""Lock chains: who waits on a lock, and the root blocker at the end of each chain."""

from __future__ import annotations

from datetime import datetime

from pooldoctor.evidence import ActivitySample, Backend
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


def root_blockers(sample: ActivitySample, waiters: list[Backend]) -> dict[int, list[int]]:
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
