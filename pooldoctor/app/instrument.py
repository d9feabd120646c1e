"""Track pool checkouts (origin, age, thread) and pool counters via SQLAlchemy pool events."""

from __future__ import annotations

import os
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from types import CodeType
from typing import Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

from pooldoctor.app.origins import CodeOrigin, caller_origin

COUNTER_NAMES: tuple[str, ...] = (
    "checkouts",
    "checkins",
    "pool_timeouts",
    "invalidations",
    "connects",
)
_CONNECT_WRAPPER_FLAG = "_pooldoctor_wrapped_connect"


@dataclass(frozen=True, slots=True)
class Checkout:
    """One connection currently checked out of an instrumented pool."""

    started: float  # time.monotonic() at checkout
    code: CodeType | None
    line: int
    thread: str

    def origin(self) -> str:
        """`relative/path.py:LINE in function`, or `unknown` when no application frame was found."""
        if self.code is None:
            return "unknown"
        return CodeOrigin.of(self.code).describe(self.line)


class PoolTracker:
    """Listeners and counters for one engine; created by `instrument`, kept until `uninstrument`."""

    def __init__(self, engine: Engine) -> None:
        self.engine_ref = weakref.ref(engine)
        self.holders: dict[int, Checkout] = {}
        self.checkouts = 0
        self.checkins = 0
        self.pool_timeouts = 0
        self.invalidations = 0
        self.connects = 0
        self.pid = os.getpid()

    # Counters use plain `+=`: CPython switches threads only at calls and backward jumps, so the
    # increment of an int attribute is not interrupted; no lock is taken on the hot path.

    def on_checkout(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        self.checkouts += 1
        code, line = caller_origin(sys._getframe(1))
        self.holders[id(record)] = Checkout(
            time.monotonic(), code, line, threading.current_thread().name
        )

    def on_checkin(self, dbapi_connection: Any, record: Any) -> None:
        self.checkins += 1
        self.holders.pop(id(record), None)

    def on_detach(self, dbapi_connection: Any, record: Any) -> None:
        self.holders.pop(id(record), None)

    def on_invalidate(self, dbapi_connection: Any, record: Any, exception: Any) -> None:
        self.invalidations += 1

    def on_connect(self, dbapi_connection: Any, record: Any) -> None:
        self.connects += 1

    def on_engine_disposed(self, engine: Engine) -> None:
        pid = os.getpid()
        if pid != self.pid:  # disposed in a forked child: the parent's checkouts are not ours
            self.pid = pid
            self.holders.clear()
        wrap_pool_connect(engine.pool, self)

    def counters(self) -> dict[str, int]:
        """A snapshot of the counters, keyed by `COUNTER_NAMES`."""
        return {name: int(getattr(self, name)) for name in COUNTER_NAMES}

    def oldest_first(self, now: float | None = None) -> list[tuple[Checkout, float]]:
        """Current checkouts with their ages in seconds, oldest first."""
        current = time.monotonic() if now is None else now
        held = list(self.holders.values())  # list() copies in one C call: safe against writers
        held.sort(key=lambda checkout: checkout.started)
        return [(checkout, max(0.0, current - checkout.started)) for checkout in held]


_POOL_LISTENERS: tuple[str, ...] = ("checkout", "checkin", "detach", "invalidate", "connect")
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
        "checkout": tracker.on_checkout,
        "checkin": tracker.on_checkin,
        "detach": tracker.on_detach,
        "invalidate": tracker.on_invalidate,
        "connect": tracker.on_connect,
    }
    return [(name, handlers[name]) for name in _POOL_LISTENERS]


def wrap_pool_connect(pool: Pool, tracker: PoolTracker) -> None:
    """Count QueuePool timeouts (3o7r): they are raised by `Pool.connect` before any pool event."""
    if pool.__dict__.get(_CONNECT_WRAPPER_FLAG):
        return
    original = pool.connect

    def connect() -> Any:
        try:
            return original()
        except sa_exc.TimeoutError:
            tracker.pool_timeouts += 1
            raise

    pool.connect = connect  # type: ignore[method-assign]
    pool.__dict__[_CONNECT_WRAPPER_FLAG] = True


def _unwrap_pool_connect(pool: Pool) -> None:
    if pool.__dict__.pop(_CONNECT_WRAPPER_FLAG, None):
        pool.__dict__.pop("connect", None)


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
        event.listen(sync_engine, "engine_disposed", tracker.on_engine_disposed)
        wrap_pool_connect(sync_engine.pool, tracker)
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
        event.remove(sync_engine, "engine_disposed", tracker.on_engine_disposed)
        _unwrap_pool_connect(sync_engine.pool)


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
