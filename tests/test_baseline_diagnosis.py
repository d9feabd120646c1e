"""Held against the app's own baseline, code paths named from app-log exceptions, cancellation
only with evidence in time, and the differential with its window-cannot-decide note."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from pooldoctor.collect.logs.records import CANCELLED, GC_CLEANUP
from pooldoctor.diagnosis import diagnose
from pooldoctor.evidence import (
    AppLogFacts,
    Evidence,
    LogEvent,
    LoggedException,
    LogMoment,
    RequestLine,
)
from pooldoctor.readings.baseline import FALLBACK_HELD_SECONDS, baseline
from pooldoctor.readings.holds import hold_reading
from pooldoctor.readings.timing import cancellations
from tests.evidence_builders import (
    NOW,
    SAMPLE_TIMES,
    activity,
    ago,
    config,
    events,
    evidence,
    idle_in_tx,
    log_file,
    pool,
    pool_sample,
    postgres,
)

QUEUEPOOL = "QueuePool limit of size 5 overflow 0 reached, connection timed out, timeout 1.00"
LEAKED_SINCE = (ago(45), ago(40), ago(38))  # 18-25 s old at the first sample


def _requests(seconds: float, count: int = 50) -> tuple[RequestLine, ...]:
    return tuple(RequestLine(ago(300 - i), 200, seconds, "/orders") for i in range(count))


def _rejected(at: datetime, order: int) -> LoggedException:
    return LoggedException(
        at=at + timedelta(milliseconds=3),
        type="app.orders.OrderRejected",
        message=f"order {order}: quantity 500 exceeds the limit 100",
        app_frame="/srv/app/orders.py:42 in create_order",
        app_frames=("/srv/app/web.py:80 in handle", "/srv/app/orders.py:42 in create_order"),
    )


def _incident(
    *, request_seconds: float, since: tuple[datetime, ...] = LEAKED_SINCE, rotate: bool = False
) -> Evidence:
    """Five-connection pool pinned; three transactions idle in transaction (unchanged, or
    replaced between samples when `rotate`); pool timeouts now; an access log."""
    samples = []
    for index, at in enumerate(SAMPLE_TIMES):
        shift = timedelta(seconds=10 * index) if rotate else timedelta(0)
        samples.append(activity(at, [idle_in_tx(7000 + i, s + shift) for i, s in enumerate(since)]))
    facts = AppLogFacts(
        exceptions=tuple(_rejected(s, 30 + i) for i, s in enumerate(since)),
        requests=_requests(request_seconds),
    )
    log = replace(
        log_file(events(LogEvent.POOL_TIMEOUT, 40, last=ago(1), minutes=2, examples=[QUEUEPOOL])),
        app=facts,
    )
    return evidence(
        pools=[pool(*(pool_sample(at, 3, size=3, max_overflow=0) for at in SAMPLE_TIMES))],
        pg=postgres(*samples),
        logs=[log],
        cfg=config(pool_size=3, max_overflow=0, pool_timeout=1.0),
    )


def test_held_age_comes_from_request_times_and_pool_timeout() -> None:
    fast = baseline(_incident(request_seconds=0.01))
    assert fast.request_p99 == 0.01 and fast.pool_timeout == 1.0
    assert fast.held_after == 3.0  # 3x pool_timeout beats 10x p99 (0.1 s)
    slow = baseline(_incident(request_seconds=2.0))
    assert slow.held_after == 20.0  # 10x p99 beats 3x pool_timeout
    assert "10x p99 request" in slow.basis
    no_times = baseline(evidence(cfg=config(pool_timeout=1.0)))
    assert no_times.held_after == FALLBACK_HELD_SECONDS


def test_young_unchanged_transactions_are_a_leak_against_a_fast_app() -> None:
    diagnosis = diagnose(_incident(request_seconds=0.01), strict=True)
    top = diagnosis.findings[0]
    assert top.runbook == "connection-leak", [(f.runbook, f.confidence) for f in diagnosis.findings]
    assert "app.orders.OrderRejected" in top.summary
    assert "/srv/app/orders.py:42 in create_order (explains 3 of 3)" in top.summary
    assert "x the p99 request (10ms)" in top.summary
    assert diagnosis.differential is not None
    considered = {a["runbook"]: a for a in diagnosis.differential["considered"]}
    assert considered["idle-in-transaction"]["verdict"] == "ruled out"
    assert "0 transactions rotated" in considered["idle-in-transaction"]["reason"]
    assert diagnosis.differential["close_call"] is None


def test_the_same_ages_are_not_held_for_an_app_whose_requests_take_seconds() -> None:
    diagnosis = diagnose(_incident(request_seconds=5.0), strict=True)
    top = diagnosis.findings[0]
    assert top.runbook == "idle-in-transaction"
    assert diagnosis.differential is not None
    note = diagnosis.differential["close_call"]
    assert note is not None and "idle-in-transaction and connection-leak" in note
    reading = hold_reading(_incident(request_seconds=5.0))
    assert diagnosis.differential["more_seconds"] == round(reading.more_seconds_to_decide(), 1)
    assert reading.more_seconds_to_decide() > 0


def test_rotating_transactions_stay_idle_in_transaction() -> None:
    diagnosis = diagnose(_incident(request_seconds=0.01, rotate=True), strict=True)
    assert diagnosis.findings[0].runbook == "idle-in-transaction"
    assert hold_reading(_incident(request_seconds=0.01, rotate=True)).held == ()


def test_exceptions_far_from_the_transactions_explain_nothing() -> None:
    incident = _incident(request_seconds=0.01)
    (log,) = incident.logs
    assert log.app is not None
    old = tuple(replace(e, at=e.at - timedelta(days=2)) for e in log.app.exceptions)
    moved = replace(incident, logs=(replace(log, app=replace(log.app, exceptions=old)),))
    assert hold_reading(moved).code_paths == ()
    assert diagnose(moved, strict=True).findings[0].runbook == "connection-leak"


def _gc_log(cancelled: bool) -> Evidence:
    moments: list[LogMoment] = []
    for i in range(10):
        at = NOW - timedelta(seconds=60 - 3 * i)
        if cancelled:
            moments.append(LogMoment(at, CANCELLED, "client disconnected; cancelling GET /q"))
        moments.append(LogMoment(at + timedelta(milliseconds=80), GC_CLEANUP, "garbage collector"))
    gc_line = (
        "The garbage collector is trying to clean up non-checked-in connection "
        "<AdaptedConnection <asyncpg.connection.Connection>>"
    )
    log = replace(
        log_file(events(LogEvent.GC_CLEANUP, 10, last=ago(30), minutes=1, examples=[gc_line])),
        app=AppLogFacts(moments=tuple(moments)),
    )
    return evidence(logs=[log])


def test_async_driver_gc_cleanups_without_cancellation_are_a_leak() -> None:
    plain = _gc_log(cancelled=False)
    assert not cancellations(plain).evidenced
    runbooks = [f.runbook for f in diagnose(plain, strict=True).findings]
    assert runbooks[0] == "connection-leak" and "async-cancellation-leak" not in runbooks


def test_cancellations_lined_up_with_gc_cleanups_are_async_cancellation() -> None:
    cancelled = _gc_log(cancelled=True)
    lined_up = cancellations(cancelled)
    assert lined_up.evidenced and lined_up.aligned == 10
    diagnosis = diagnose(cancelled, strict=True)
    assert diagnosis.findings[0].runbook == "async-cancellation-leak"
    assert "10 of 10 garbage-collector cleanups" in diagnosis.findings[0].summary


def test_without_tracebacks_the_5xx_request_that_began_then_names_the_path() -> None:
    incident = _incident(request_seconds=0.01)
    (log,) = incident.logs
    assert log.app is not None
    failed = tuple(
        RequestLine(s + timedelta(milliseconds=20), 500, 0.025, "/orders?quantity=500")
        for s in LEAKED_SINCE
    )
    facts = replace(log.app, exceptions=(), requests=log.app.requests + failed)
    top = diagnose(replace(incident, logs=(replace(log, app=facts),)), strict=True).findings[0]
    assert top.runbook == "connection-leak"
    assert "HTTP 500: /orders?quantity=500 (explains 3 of 3)" in top.summary
