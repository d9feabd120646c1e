"""Track pool checkouts (origin, age, thread) and pool counters via SQLAlchemy pool events."""

from __future__ import annotations

import os
import sys
import threading
import time
import weakref
from bisect import bisect_left
from dataclasses import dataclass
from types import CodeType
from typing import Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

from pooldoctor.app.histogram import Histogram, notify
from pooldoctor.app.origins import CodeOrigin, caller_origin, line_of

COUNTER_NAMES: tuple[str, ...] = (
    "checkouts",
    "checkins",
    "pool_timeouts",
    "invalidations",
    "connects",
)
_WRAPPED_FLAG = "_pooldoctor_wrapped"


@dataclass(frozen=True, slots=True)
class Checkout:
    """One connection currently checked out of an instrumented pool."""

    started: float  # time.monotonic() at checkout
    code: CodeType | None
    instruction: int  # f_lasti of the origin frame; turned into a line only when reported
    owner: threading.Thread  # the thread that checked it out

    @property
    def thread(self) -> str:
        """The name of the thread that checked the connection out."""
        return self.owner.name

    @property
    def thread_alive(self) -> bool:
        """False once that thread has finished: nothing running can return the connection.

        Threads Python did not start (`_DummyThread`) always count as alive, as does an event
        loop's thread for asyncio checkouts: no claim is made about them."""
        return self.owner.is_alive()

    def origin(self) -> str:
        """`relative/path.py:LINE in function`, or `unknown` when no application frame was found."""
        if self.code is None:
            return "unknown"
        return CodeOrigin.of(self.code).describe(line_of(self.code, self.instruction))


# What the hot path stores per checkout: (started, code, instruction, thread). A plain tuple
# because building a frozen dataclass per checkout costs more than the rest of the bookkeeping.
# The Thread object itself, not its name or ident: `.name` is a property call on the hot path,
# and an ident can be reused by a new thread once the old one has finished.
HeldTuple = tuple[float, CodeType | None, int, threading.Thread]


class PoolTracker:
    """Counters and current checkouts of one engine; created by `instrument`."""

    def __init__(self, engine: Engine) -> None:
        self.engine_ref = weakref.ref(engine)
        self.holders: dict[int, HeldTuple] = {}  # id(connection record) -> checkout
        self.checkouts = 0
        self.checkins = 0
        self.pool_timeouts = 0
        self.invalidations = 0
        self.connects = 0
        self.pending = 0  # callers inside pool.connect() right now: waiting for a connection
        self.wait_time = Histogram()  # seconds spent in pool.connect(), timeouts included
        self.use_time = Histogram()  # seconds from checkout to checkin
        self.create_time = Histogram()  # seconds to open a new DBAPI connection
        self.pid = os.getpid()

    # Counters use plain `+=`: CPython switches threads only at calls and backward jumps, so the
    # increment of an int attribute is not interrupted; no lock is taken on the hot path.

    def on_detach(self, dbapi_connection: Any, record: Any) -> None:
        self.holders.pop(id(record), None)

    def on_invalidate(self, dbapi_connection: Any, record: Any, exception: Any) -> None:
        self.invalidations += 1

    def on_connect(self, dbapi_connection: Any, record: Any) -> None:
        self.connects += 1

    def on_pool_recreated(self, pool: Pool) -> None:
        """`Engine.dispose()` swapped in a new pool: track it too."""
        pid = os.getpid()
        if pid != self.pid:  # disposed in a forked child: the parent's checkouts are not ours
            self.pid = pid
            self.holders.clear()
        wrap_pool(pool, self)

    def forked(self) -> bool:
        """True in a forked child that has not disposed the engine yet: the checkouts tracked
        were made by the parent's threads, which do not exist here."""
        return os.getpid() != self.pid

    def counters(self) -> dict[str, int]:
        """A snapshot of the counters, keyed by `COUNTER_NAMES`."""
        return {name: int(getattr(self, name)) for name in COUNTER_NAMES}

    def current(self) -> list[Checkout]:
        """Current checkouts, oldest first."""
        held = list(self.holders.values())  # list() copies in one C call: safe against writers
        held.sort(key=lambda entry: entry[0])
        return [Checkout(*entry) for entry in held]

    def oldest_first(self, now: float | None = None) -> list[tuple[Checkout, float]]:
        """Current checkouts with their ages in seconds, oldest first."""
        current = time.monotonic() if now is None else now
        return [(checkout, max(0.0, current - checkout.started)) for checkout in self.current()]


# Rare-path pool events; checkout and checkin are tracked by wrapping the pool (see wrap_pool).
_POOL_LISTENERS: tuple[str, ...] = ("detach", "invalidate", "connect")
_trackers: weakref.WeakKeyDictionary[Engine, PoolTracker] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def sync_engine_of(engine: Any) -> Engine:
    """The sync `Engine` behind an `Engine` or `AsyncEngine` (duck-typed: no asyncio import)."""
    candidate = getattr(engine, "sync_engine", engine)
    if not isinstance(candidate, Engine):
        raise TypeError(f"expected a SQLAlchemy Engine or AsyncEngine, got {type(engine).__name__}")
    return candidate


def _listeners(tracker: PoolTracker) -> list[tuple[str, Any]]:
    handlers = {
        "detach": tracker.on_detach,
        "invalidate": tracker.on_invalidate,
        "connect": tracker.on_connect,
    }
    return [(name, handlers[name]) for name in _POOL_LISTENERS]


def wrap_pool(pool: Pool, tracker: PoolTracker) -> None:
    """Track checkouts in `pool.connect` and checkins in `pool._return_conn`.

    Why not the `checkout`/`checkin` events: a `checkout` listener moves every checkout onto
    SQLAlchemy's slow path (measured ~+15% per checkout before any work of ours), and pool
    timeouts (3o7r) are raised by `Pool.connect` before any event fires. `_return_conn` is the
    single point every checkin passes through, the garbage-collector path included. `recreate`
    is wrapped (rather than listening to `engine_disposed`) because any engine-level listener
    slows every `Engine.connect()`.
    """
    if pool.__dict__.get(_WRAPPED_FLAG):
        return
    original_connect = pool.connect
    original_return = pool._return_conn
    original_recreate = pool.recreate
    original_create = pool._create_connection
    holders = tracker.holders
    getframe = sys._getframe
    monotonic = time.monotonic
    current_thread = threading.current_thread

    # Histogram.observe inlined: a method call per checkout and checkin costs more than the rest.
    wait_time, use_time = tracker.wait_time, tracker.use_time
    wait_bounds, use_bounds = wait_time.bounds, use_time.bounds
    wait_counts, use_counts = wait_time.counts, use_time.counts
    wait_observers, use_observers = wait_time.observers, use_time.observers

    def connect() -> Any:
        began = monotonic()
        tracker.pending += 1
        try:
            fairy = original_connect()
        except sa_exc.TimeoutError:
            tracker.pool_timeouts += 1
            raise
        finally:
            tracker.pending -= 1
            now = monotonic()
            waited = now - began
            wait_counts[bisect_left(wait_bounds, waited)] += 1
            wait_time.total += waited
            if wait_observers:
                notify(wait_observers, waited)
        tracker.checkouts += 1
        code, instruction = caller_origin(getframe(1))
        record = fairy._connection_record
        holders[id(record)] = (now, code, instruction, current_thread())
        return fairy

    def return_conn(record: Any) -> None:
        tracker.checkins += 1
        held = holders.pop(id(record), None)  # before another thread can check the record out
        if held is not None:
            used = monotonic() - held[0]
            use_counts[bisect_left(use_bounds, used)] += 1
            use_time.total += used
            if use_observers:
                notify(use_observers, used)
        original_return(record)

    def create_connection() -> Any:
        began = monotonic()
        try:
            return original_create()
        finally:
            tracker.create_time.observe(monotonic() - began)

    def recreate() -> Pool:
        new_pool = original_recreate()
        tracker.on_pool_recreated(new_pool)
        return new_pool

    pool.connect = connect  # type: ignore[method-assign]
    pool._return_conn = return_conn  # type: ignore[method-assign]
    pool.recreate = recreate  # type: ignore[method-assign]
    pool._create_connection = create_connection  # type: ignore[method-assign]
    pool.__dict__[_WRAPPED_FLAG] = True


def _unwrap_pool(pool: Pool) -> None:
    if pool.__dict__.pop(_WRAPPED_FLAG, None):
        pool.__dict__.pop("connect", None)
        pool.__dict__.pop("_return_conn", None)
        pool.__dict__.pop("recreate", None)
        pool.__dict__.pop("_create_connection", None)


def instrument(engine: Any) -> PoolTracker:
    """Start tracking checkouts and counters on `engine` (Engine or AsyncEngine); idempotent."""
    sync_engine = sync_engine_of(engine)
    with _registry_lock:
        tracker = _trackers.get(sync_engine)
        if tracker is not None:
            return tracker
        tracker = PoolTracker(sync_engine)
        for name, handler in _listeners(tracker):
            event.listen(sync_engine, name, handler)
        wrap_pool(sync_engine.pool, tracker)
        _trackers[sync_engine] = tracker
        return tracker


def uninstrument(engine: Any) -> None:
    """Remove what `instrument` added; a no-op for an engine that is not instrumented."""
    sync_engine = sync_engine_of(engine)
    with _registry_lock:
        tracker = _trackers.pop(sync_engine, None)
        if tracker is None:
            return
        for name, handler in _listeners(tracker):
            event.remove(sync_engine, name, handler)
        _unwrap_pool(sync_engine.pool)


def tracker_for(engine: Any) -> PoolTracker | None:
    """The tracker of an instrumented engine, or None."""
    return _trackers.get(sync_engine_of(engine))


def instrumented_engines() -> list[Engine]:
    """Every engine currently instrumented in this process."""
    with _registry_lock:
        return list(_trackers.keys())


__all__ = [
    "COUNTER_NAMES",
    "Checkout",
    "PoolTracker",
    "instrument",
    "instrumented_engines",
    "sync_engine_of",
    "tracker_for",
    "uninstrument",
]
