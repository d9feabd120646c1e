"""The app's pool-status JSON payload: one schema, written by app/status.py and read by
collect/pool_payloads.py (tests/test_pool_payloads.py round-trips every field)."""

from __future__ import annotations

from typing import TypedDict

ENGINES_KEY = "engines"  # several engines behind one URL: {"engines": {label: payload}}
NULLPOOL_CLASS = "NullPool"  # a pool_class that opens a connection per checkout


class HolderPayload(TypedDict):
    """One checkout still held: where it was taken, how long ago, by which thread."""

    origin: str
    age_seconds: float
    thread: str | None
    thread_alive: bool | None  # False: that thread has finished; None: cannot say


class PoolStatusPayload(TypedDict):
    """One engine's pool: SQLAlchemy's numbers (None where its pool class has none), holders."""

    size: int | None
    checked_out: int | None
    checked_in: int | None
    overflow: int | None  # QueuePool.overflow(): negative while fewer than size connections exist
    max_overflow: int | None
    timeout: float | None
    holders: list[HolderPayload]  # the oldest MAX_HOLDERS, oldest first
    counters: dict[str, float]
    pool_class: str
    instrumented: bool
    holders_total: int | None  # every holder, listed or not (None: not instrumented)
    holders_dead_threads: int | None  # holders whose thread has finished, listed or not


POOL_FIELDS = tuple(PoolStatusPayload.__annotations__)
HOLDER_FIELDS = tuple(HolderPayload.__annotations__)
