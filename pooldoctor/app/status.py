"""`pool_status(engine)`: the JSON payload that `pooldoctor diagnose --pool-status` reads."""

from __future__ import annotations

from typing import Any

from sqlalchemy.pool import Pool, QueuePool, SingletonThreadPool

from pooldoctor.app.instrument import Checkout, PoolTracker, sync_engine_of, tracker_for
from pooldoctor.status_schema import HolderPayload, PoolStatusPayload

MAX_HOLDERS = 20  # the oldest holders explain a leak; more would bloat every poll of the endpoint
AGE_DECIMALS = 3


def _queue_pool_numbers(pool: QueuePool) -> dict[str, Any]:
    return {
        "size": pool.size(),
        "checked_out": pool.checkedout(),
        "checked_in": pool.checkedin(),
        # SQLAlchemy's own overflow(): negative while fewer than `size` connections exist.
        "overflow": pool.overflow(),
        "max_overflow": pool._max_overflow,
        "timeout": float(pool.timeout()),
    }


def _pool_numbers(pool: Pool, tracked_checkouts: int | None) -> dict[str, Any]:
    if isinstance(pool, QueuePool):
        return _queue_pool_numbers(pool)
    size = pool.size if isinstance(pool, SingletonThreadPool) else None
    return {
        "size": size,
        "checked_out": tracked_checkouts,
        "checked_in": None,
        "overflow": None,
        "max_overflow": None,
        "timeout": None,
    }


def _holder(checkout: Checkout, age: float, alive: bool | None) -> HolderPayload:
    return {
        "origin": checkout.origin(),
        "age_seconds": round(age, AGE_DECIMALS),
        "thread": checkout.thread,
        "thread_alive": alive,
    }


def _threads_alive(tracker: PoolTracker | None, held: list[Checkout]) -> list[bool | None]:
    """Per checkout, whether its thread is alive; None where that says nothing about a leak."""
    if tracker is None or tracker.forked():  # inherited checkouts: their threads are not here
        return [None] * len(held)
    alive: list[bool | None] = [checkout.thread_alive for checkout in held]
    # A thread can return its connection and exit between `held` and `thread_alive`: a finished
    # thread counts only for a checkout still held after the thread was seen finished.
    still_held = {(entry[0], id(entry[3])) for entry in list(tracker.holders.values())}
    return [
        None if is_alive is False and (c.started, id(c.owner)) not in still_held else is_alive
        for c, is_alive in zip(held, alive, strict=True)
    ]


def pool_status(engine: Any, max_holders: int = MAX_HOLDERS) -> PoolStatusPayload:
    """The pool's numbers, plus holders (oldest first) and counters when instrumented.

    Each holder says whether the thread that checked it out is still alive (None in a forked
    child that inherited the parent's checkouts); `holders_dead_threads` counts those whose
    thread has finished, over all holders, not only the listed ones."""
    sync_engine = sync_engine_of(engine)
    pool = sync_engine.pool
    tracker = tracker_for(sync_engine)
    held = tracker.oldest_first() if tracker is not None else []
    alive = _threads_alive(tracker, [checkout for checkout, _age in held])
    numbers = _pool_numbers(pool, len(held) if tracker is not None else None)
    knows_threads = tracker is not None and not tracker.forked()
    return {
        "size": numbers["size"],
        "checked_out": numbers["checked_out"],
        "checked_in": numbers["checked_in"],
        "overflow": numbers["overflow"],
        "max_overflow": numbers["max_overflow"],
        "timeout": numbers["timeout"],
        "holders": [
            _holder(checkout, age, is_alive)
            for (checkout, age), is_alive in zip(held[:max_holders], alive, strict=False)
        ],
        "counters": dict(tracker.counters()) if tracker is not None else {},
        "pool_class": type(pool).__name__,
        "instrumented": tracker is not None,
        "holders_total": len(held) if tracker is not None else None,
        "holders_dead_threads": alive.count(False) if knows_threads else None,
    }
