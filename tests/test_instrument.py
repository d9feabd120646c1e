"""instrument()/pool_status() against real PostgreSQL engines: holders, counters, pool timeouts."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import NullPool, StaticPool

import pooldoctor
from pooldoctor.app.instrument import instrumented_engines, tracker_for
from pooldoctor.app.origins import _filename_is_library
from pooldoctor.lab import webapp
from pooldoctor.lab.cluster import TempCluster

THIS_FILE = "tests/test_instrument.py"


@pytest.fixture
def engine(pg: TempCluster) -> Iterator[sa.Engine]:
    engine = sa.create_engine(pg.url(), pool_size=2, max_overflow=1, pool_timeout=0.3)
    yield engine
    pooldoctor.uninstrument(engine)
    engine.dispose()


def _line_of(marker: str) -> int:
    with open(__file__, encoding="utf-8") as source:
        for number, line in enumerate(source, start=1):
            if marker in line and "_line_of" not in line:
                return number
    raise AssertionError(marker)


def open_report_connection(engine: sa.Engine) -> sa.Connection:
    return engine.connect()  # origin-marker: report


def test_holder_names_the_application_frame_and_ages(engine: sa.Engine) -> None:
    pooldoctor.instrument(engine)
    conn = open_report_connection(engine)
    try:
        time.sleep(0.05)
        status = pooldoctor.pool_status(engine)
    finally:
        conn.close()
    [holder] = status["holders"]
    assert holder["origin"] == (
        f"{THIS_FILE}:{_line_of('origin-marker: report')} in open_report_connection"
    )
    assert 0.05 <= holder["age_seconds"] < 30
    assert holder["thread"] == threading.current_thread().name
    assert pooldoctor.pool_status(engine)["holders"] == []


def test_payload_shape_and_counters_for_queue_pool(engine: sa.Engine) -> None:
    pooldoctor.instrument(engine)
    first = engine.connect()
    second = engine.connect()
    second.close()
    status = pooldoctor.pool_status(engine)
    first.close()
    assert {key: status[key] for key in ("size", "checked_out", "checked_in", "overflow")} == {
        "size": 2,
        "checked_out": 1,
        "checked_in": 1,
        "overflow": 0,
    }
    assert status["max_overflow"] == 1
    assert status["timeout"] == 0.3
    assert status["pool_class"] == "QueuePool"
    assert status["counters"] == {
        "checkouts": 2,
        "checkins": 1,
        "pool_timeouts": 0,
        "invalidations": 0,
        "connects": 2,
    }
    assert len(status["holders"]) == 1


def test_instrument_is_idempotent_and_uninstrument_stops_counting(engine: sa.Engine) -> None:
    tracker = pooldoctor.instrument(engine)
    assert pooldoctor.instrument(engine) is tracker
    with engine.connect():
        pass
    assert tracker.checkouts == 1
    assert engine in instrumented_engines()
    pooldoctor.uninstrument(engine)
    with engine.connect():
        pass
    assert tracker.checkouts == 1
    assert "connect" not in engine.pool.__dict__
    assert pooldoctor.pool_status(engine)["instrumented"] is False
    pooldoctor.uninstrument(engine)  # a second call is harmless


def test_real_pool_timeout_is_counted(engine: sa.Engine) -> None:
    pooldoctor.instrument(engine)
    held = [engine.connect() for _ in range(3)]  # pool_size 2 + max_overflow 1: the pool is full
    try:
        with pytest.raises(sa_exc.TimeoutError, match="QueuePool limit"):
            engine.connect()
        status = pooldoctor.pool_status(engine)
    finally:
        for conn in held:
            conn.close()
    assert status["counters"]["pool_timeouts"] == 1
    assert status["checked_out"] == 3
    assert len(status["holders"]) == 3
    ages = [holder["age_seconds"] for holder in status["holders"]]
    assert ages == sorted(ages, reverse=True)  # oldest first


def test_timeouts_still_counted_after_dispose(engine: sa.Engine) -> None:
    pooldoctor.instrument(engine)
    engine.dispose()
    held = [engine.connect() for _ in range(3)]
    try:
        with pytest.raises(sa_exc.TimeoutError):
            engine.connect()
    finally:
        for conn in held:
            conn.close()
    assert pooldoctor.pool_status(engine)["counters"]["pool_timeouts"] == 1


def test_invalidation_is_counted_and_holder_released(engine: sa.Engine) -> None:
    pooldoctor.instrument(engine)
    conn = engine.connect()
    conn.invalidate()
    conn.close()
    status = pooldoctor.pool_status(engine)
    assert status["counters"]["invalidations"] == 1
    assert status["holders"] == []


def test_detached_connection_is_no_longer_a_holder(engine: sa.Engine) -> None:
    pooldoctor.instrument(engine)
    conn = engine.connect()
    conn.detach()
    assert pooldoctor.pool_status(engine)["holders"] == []
    conn.close()


def test_holder_thread_name_is_the_checking_out_thread(engine: sa.Engine) -> None:
    pooldoctor.instrument(engine)
    taken = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with engine.connect():
            taken.set()
            release.wait(10)

    worker = threading.Thread(target=hold, name="orders-worker")
    worker.start()
    try:
        assert taken.wait(10)
        [holder] = pooldoctor.pool_status(engine)["holders"]
    finally:
        release.set()
        worker.join(10)
    assert holder["thread"] == "orders-worker"
    assert holder["origin"].endswith(" in hold")


def test_holders_are_capped_oldest_first(pg: TempCluster) -> None:
    engine = sa.create_engine(pg.url(), pool_size=5, max_overflow=0)
    pooldoctor.instrument(engine)
    held = []
    try:
        for _ in range(5):
            held.append(engine.connect())
            time.sleep(0.01)
        status = pooldoctor.pool_status(engine, max_holders=2)
        assert status["holders_total"] == 5
        assert len(status["holders"]) == 2
        assert status["holders"][0]["age_seconds"] > status["holders"][1]["age_seconds"]
    finally:
        for conn in held:
            conn.close()
        pooldoctor.uninstrument(engine)
        engine.dispose()


def test_status_without_instrument_has_no_holders_or_counters(engine: sa.Engine) -> None:
    with engine.connect():
        status = pooldoctor.pool_status(engine)
    assert status["checked_out"] == 1
    assert status["holders"] == []
    assert status["counters"] == {}
    assert status["instrumented"] is False


@pytest.mark.parametrize("poolclass", [NullPool, StaticPool])
def test_pools_without_a_queue_report_nulls(pg: TempCluster, poolclass: type) -> None:
    engine = sa.create_engine(pg.url(), poolclass=poolclass)
    pooldoctor.instrument(engine)
    try:
        with engine.connect():
            status = pooldoctor.pool_status(engine)
    finally:
        pooldoctor.uninstrument(engine)
        engine.dispose()
    assert status["pool_class"] == poolclass.__name__
    assert status["size"] is None
    assert status["max_overflow"] is None
    assert status["timeout"] is None
    assert status["checked_out"] == 1  # known from the tracked checkouts
    assert len(status["holders"]) == 1


def test_rejects_what_is_not_an_engine() -> None:
    with pytest.raises(TypeError, match="Engine"):
        pooldoctor.instrument(object())


def test_async_engine_is_tracked_through_its_sync_engine(pg: TempCluster) -> None:
    pytest.importorskip("greenlet")
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    async def scenario() -> dict[str, object]:
        engine = create_async_engine(pg.url(), pool_size=1, max_overflow=0)
        pooldoctor.instrument(engine)
        try:
            async with engine.connect() as conn:
                await conn.execute(sa.text("select 1"))
                status = pooldoctor.pool_status(engine)
        finally:
            pooldoctor.uninstrument(engine)
            await engine.dispose()
        return status

    status = asyncio.run(scenario())
    assert status["pool_class"] == "AsyncAdaptedQueuePool"
    [holder] = status["holders"]  # type: ignore[misc]
    assert " in scenario" in holder["origin"]


def test_tracker_is_per_engine(pg: TempCluster, engine: sa.Engine) -> None:
    other = sa.create_engine(pg.url())
    try:
        pooldoctor.instrument(engine)
        assert tracker_for(other) is None
    finally:
        other.dispose()


def _hold_in_a_thread(engine: sa.Engine, kept: list[sa.Connection], name: str) -> None:
    """Check a connection out in a new thread that ends without returning it."""
    worker = threading.Thread(target=lambda: kept.append(engine.connect()), name=name)
    worker.start()
    worker.join(10)
    assert not worker.is_alive()


def test_holder_reports_whether_its_thread_is_still_alive(engine: sa.Engine) -> None:
    pooldoctor.instrument(engine)
    kept: list[sa.Connection] = []
    _hold_in_a_thread(engine, kept, "finished-request")
    mine = engine.connect()
    try:
        status = pooldoctor.pool_status(engine)
    finally:
        mine.close()
        for conn in kept:
            conn.close()
    alive = {holder["thread"]: holder["thread_alive"] for holder in status["holders"]}
    assert alive == {"finished-request": False, threading.current_thread().name: True}
    assert status["holders_dead_threads"] == 1
    after = pooldoctor.pool_status(engine)
    assert (after["holders"], after["holders_dead_threads"]) == ([], 0)


def test_dead_threads_are_counted_beyond_the_listed_holders(pg: TempCluster) -> None:
    engine = sa.create_engine(pg.url(), pool_size=3, max_overflow=0)
    pooldoctor.instrument(engine)
    kept: list[sa.Connection] = []
    try:
        for index in range(3):
            _hold_in_a_thread(engine, kept, f"request-{index}")
        status = pooldoctor.pool_status(engine, max_holders=1)
    finally:
        for conn in kept:
            conn.close()
        pooldoctor.uninstrument(engine)
        engine.dispose()
    assert [h["thread"] for h in status["holders"]] == ["request-0"]
    assert status["holders_dead_threads"] == 3


def test_status_without_instrument_reports_no_thread_facts(engine: sa.Engine) -> None:
    with engine.connect():
        status = pooldoctor.pool_status(engine)
    assert status["holders_dead_threads"] is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_makes_no_claim_about_inherited_checkouts(engine: sa.Engine) -> None:
    pooldoctor.instrument(engine)
    kept: list[sa.Connection] = []
    _hold_in_a_thread(engine, kept, "parent-request")
    read_end, write_end = os.pipe()
    try:
        child = os.fork()
        if child == 0:  # the child reports its view and exits at once, touching no connection
            try:
                os.write(write_end, json.dumps(pooldoctor.pool_status(engine)).encode())
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            child_status = json.loads(pipe.read())
        os.waitpid(child, 0)
        parent_status = pooldoctor.pool_status(engine)
    finally:
        for conn in kept:
            conn.close()
    assert [h["thread_alive"] for h in parent_status["holders"]] == [False]
    assert [h["thread_alive"] for h in child_status["holders"]] == [None]
    assert child_status["holders_dead_threads"] is None


def test_lab_app_frames_are_application_code() -> None:
    lab = Path(webapp.__file__)
    assert not _filename_is_library(str(lab))
    assert _filename_is_library(str(Path(pooldoctor.__file__).parent / "app" / "status.py"))
    assert _filename_is_library(sa.__file__ or "")
