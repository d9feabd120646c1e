"""`pool_status(engine)`: the JSON payload that `pooldoctor diagnose --pool-status` reads."""

from __future__ import annotations

from typing import Any

from sqlalchemy.pool import Pool, QueuePool, SingletonThreadPool

from pooldoctor.app.instrument import sync_engine_of, tracker_for

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


def pool_status(engine: Any, max_holders: int = MAX_HOLDERS) -> dict[str, Any]:
    """The pool's numbers, plus holders (oldest first) and counters when instrumented."""
    sync_engine = sync_engine_of(engine)
    pool = sync_engine.pool
    tracker = tracker_for(sync_engine)
    held = tracker.oldest_first() if tracker is not None else []
    payload = _pool_numbers(pool, len(held) if tracker is not None else None)
    payload["holders"] = [
        {
            "origin": checkout.origin(),
            "age_seconds": round(age, AGE_DECIMALS),
            "thread": checkout.thread,
        }
        for checkout, age in held[:max_holders]
    ]
    payload["counters"] = tracker.counters() if tracker is not None else {}
    payload["pool_class"] = type(pool).__name__
    payload["instrumented"] = tracker is not None
    payload["holders_total"] = len(held) if tracker is not None else None
    return payload
