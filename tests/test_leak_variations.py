"""The exception-path leak as the tool meets it beyond the lab: seconds old, hours old, beside
neighbours (another app's idle-in-transaction sessions, a pg_dump holding a long transaction), after
an old resolved error burst, with clocks apart and a log without milliseconds. The diagnosis and
the code path it names must not move."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from pooldoctor.diagnosis import diagnose
from pooldoctor.evidence import (
    AppLogFacts,
    Backend,
    Evidence,
    LogEvent,
    LoggedException,
    RequestLine,
)
from pooldoctor.findings import Diagnosis
from pooldoctor.readings.baseline import FALLBACK_HELD_SECONDS, baseline
from pooldoctor.readings.codepaths import SKEW_SECONDS
from pooldoctor.readings.holds import hold_reading
from pooldoctor.report.build import build_report
from pooldoctor.report.render import render_json, render_markdown
from tests.evidence_builders import (
    NOW,
    active,
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

QUEUEPOOL = "QueuePool limit of size 3 overflow 0 reached, connection timed out, timeout 1.00"
FRAME = "/srv/app/orders.py:42 in create_order"
POOL_SIZE = 3


def _rejected(at: datetime, order: int, lag_ms: float = 3.0) -> LoggedException:
    return LoggedException(
        at=at + timedelta(milliseconds=lag_ms),
        type="app.orders.OrderRejected",
        message=f"order {order}: quantity 500 exceeds the limit 100",
        app_frame=FRAME,
        app_frames=("/srv/app/web.py:80 in handle", FRAME),
    )


def _leak(
    leaked: tuple[datetime, ...],
    *,
    sample_times: tuple[datetime, ...] = (ago(2), ago(1), NOW),
    timeouts_since: datetime | None = None,
    neighbours: tuple[Backend, ...] = (),
    extra_exceptions: tuple[LoggedException, ...] = (),
    extra_requests: tuple[RequestLine, ...] = (),
    requests: bool = True,
    db_clock_ahead: float = 0.0,
    lag_ms: float = 3.0,
) -> Evidence:
    """A pool of 3 pinned by three transactions idle in transaction since `leaked`, opened by
    requests that failed with OrderRejected; waiters time out from `timeouts_since` to now."""
    ahead = timedelta(seconds=db_clock_ahead)
    samples = [
        activity(
            at + ahead,
            [idle_in_tx(7000 + i, s + ahead, app="orders-api") for i, s in enumerate(leaked)]
            + list(neighbours),
        )
        for at in sample_times
    ]
    recent = tuple(RequestLine(ago(300 - i), 200, 0.01, "/orders") for i in range(50))
    facts = AppLogFacts(
        exceptions=extra_exceptions
        + tuple(_rejected(s, 30 + i, lag_ms) for i, s in enumerate(leaked)),
        requests=(recent if requests else ()) + extra_requests,
    )
    first = timeouts_since or min(leaked)
    minutes = max(1, int((NOW - first).total_seconds() // 60) + 1)
    summary = replace(
        events(LogEvent.POOL_TIMEOUT, 40, last=ago(0.5), minutes=minutes, examples=[QUEUEPOOL]),
        first=first,
    )
    log = replace(log_file(summary), app=facts)
    return evidence(
        pools=[
            pool(
                *(pool_sample(at, POOL_SIZE, size=POOL_SIZE, max_overflow=0) for at in sample_times)
            )
        ],
        pg=postgres(*samples),
        logs=[log],
        cfg=config(pool_size=POOL_SIZE, max_overflow=0, pool_timeout=1.0),
    )


def _is_the_leak(diagnosis: Diagnosis) -> None:
    ranked = [(f.runbook, f.confidence) for f in diagnosis.findings]
    top = diagnosis.findings[0]
    assert top.runbook == "connection-leak", ranked
    assert f"{FRAME} (explains 3 of 3)" in top.summary, top.summary
    assert diagnosis.differential is not None and diagnosis.differential["for"] == "connection-leak"


def test_a_leak_seconds_old_is_a_leak() -> None:
    # Leaked 4-5 s ago, timeouts for 4 s: past 3x pool_timeout, unchanged over 2 s of samples.
    incident = _leak((ago(5), ago(4.6), ago(4.2)), timeouts_since=ago(4))
    _is_the_leak(diagnose(incident, strict=True))


def test_a_leak_hours_old_is_a_leak_named_by_exceptions_logged_hours_ago() -> None:
    leaked = (ago(3 * 3600), ago(3 * 3600 - 40), ago(2 * 3600))
    incident = _leak(leaked, sample_times=(ago(20), ago(10), NOW), timeouts_since=ago(2 * 3600))
    diagnosis = diagnose(incident, strict=True)
    _is_the_leak(diagnosis)
    assert "3h" in diagnosis.findings[0].summary or "2h" in diagnosis.findings[0].summary


def test_an_old_resolved_burst_of_other_errors_does_not_move_it() -> None:
    burst = tuple(
        LoggedException(
            at=ago(2 * 86400 - i), type="app.pdf.RenderTimeout", message="http://pdf:9000",
            app_frame="/srv/app/invoices.py:88 in render_invoice",
        )
        for i in range(200)
    )  # fmt: skip
    failed = tuple(RequestLine(ago(2 * 86400 - i), 502, 30.0, "/invoices") for i in range(200))
    diagnosis = diagnose(
        _leak((ago(25), ago(24), ago(22)), extra_exceptions=burst, extra_requests=failed),
        strict=True,
    )
    _is_the_leak(diagnosis)
    assert "RenderTimeout" not in diagnosis.findings[0].summary


def _neighbours(count: int) -> tuple[Backend, ...]:
    """A reporting job under its own application_name, idle in transaction for 20 minutes."""
    return tuple(
        idle_in_tx(8000 + i, ago(1200 + i), app="nightly-report", user="report")
        for i in range(count)
    )


def test_another_apps_idle_in_transaction_sessions_do_not_move_it() -> None:
    diagnosis = diagnose(_leak((ago(25), ago(24), ago(22)), neighbours=_neighbours(2)), strict=True)
    _is_the_leak(diagnosis)
    assert "nightly-report" not in diagnosis.findings[0].summary


def test_a_neighbour_with_more_sessions_than_the_app_needs_the_apps_name() -> None:
    # With more backends than the app, the neighbour looks like the app to a count; the app's
    # config naming its application_name (PGAPPNAME, or in DATABASE_URL) settles it.
    incident = _leak((ago(25), ago(24), ago(22)), neighbours=_neighbours(6))
    assert incident.config is not None
    named = replace(incident, config=replace(incident.config, application_name="orders-api"))
    diagnosis = diagnose(named, strict=True)
    _is_the_leak(diagnosis)
    assert "nightly-report" not in diagnosis.findings[0].summary


def test_a_backup_holding_a_long_transaction_does_not_move_it() -> None:
    dump = active(
        9000, NOW, 2400, app="pg_dump", user="backup",
        query='COPY public.orders (id, quantity) TO stdout;',
    )  # fmt: skip
    diagnosis = diagnose(_leak((ago(25), ago(24), ago(22)), neighbours=(dump,)), strict=True)
    _is_the_leak(diagnosis)
    assert "pg_dump" not in diagnosis.findings[0].summary


def test_the_match_window_widens_by_the_measured_clock_offset() -> None:
    leaked = (ago(25), ago(24), ago(22))
    # The database clock runs 0.3 s ahead of the app host's: each exception is logged 0.3 s
    # "before" its xact_start as pg_stat_activity reports it, far beyond sampling jitter.
    offset = hold_reading(_leak(leaked, db_clock_ahead=0.3))
    assert offset.match_window is not None
    assert offset.match_window.clock_offset == pytest.approx(0.3)
    assert offset.match_window.before > 0.3
    assert [p.explains for p in offset.code_paths] == [3]
    # Without the pool samples that measure the offset, the window stays at sampling jitter.
    unmeasured = _leak(leaked, db_clock_ahead=0.3)
    unmeasured = replace(unmeasured, pools=())
    reading = hold_reading(unmeasured)
    assert reading.match_window is not None and reading.match_window.before == SKEW_SECONDS
    assert reading.code_paths == () or all(p.explains < 3 for p in reading.code_paths)


def test_a_log_without_milliseconds_still_names_the_path() -> None:
    leaked = (ago(25.8), ago(24.7), ago(22.9))
    incident = _leak(leaked, lag_ms=3.0)
    (log,) = incident.logs
    assert log.app is not None
    to_second = tuple(replace(e, at=e.at.replace(microsecond=0)) for e in log.app.exceptions)
    truncated = replace(incident, logs=(replace(log, app=replace(log.app, exceptions=to_second)),))
    reading = hold_reading(truncated)
    assert reading.match_window is not None and reading.match_window.log_resolution == 1.0
    assert [p.explains for p in reading.code_paths] == [3]


def test_without_work_times_the_held_age_is_how_long_waiters_have_timed_out() -> None:
    incident = _leak((ago(50), ago(48), ago(47)), timeouts_since=ago(40), requests=False)
    base = baseline(incident)
    assert base.request_p99 is None and base.hold_mean is None
    assert base.timeouts_for is not None and 39 <= base.timeouts_for <= 41
    assert base.held_after == pytest.approx(base.timeouts_for)
    assert "waiters have been timing out" in base.basis
    assert [h.pid for h in hold_reading(incident).held] == [7000, 7001, 7002]
    # Transactions younger than the run of timeouts began after waiters started failing.
    younger = _leak((ago(30), ago(29), ago(28)), timeouts_since=ago(40), requests=False)
    assert hold_reading(younger).held == ()


def test_without_work_times_or_timeouts_the_gateway_rule_stands() -> None:
    quiet = evidence(cfg=config(pool_timeout=1.0))
    assert baseline(quiet).held_after == FALLBACK_HELD_SECONDS


def test_without_work_times_checkouts_by_running_threads_keep_the_gateway_rule() -> None:
    # A slow statement also outlasts the run of timeouts while working: the timeouts-derived
    # age judges only transactions that sit idle and unchanged.
    base = baseline(_leak((ago(50), ago(48), ago(47)), timeouts_since=ago(40), requests=False))
    assert base.held_after < FALLBACK_HELD_SECONDS
    assert base.checkout_held_after == FALLBACK_HELD_SECONDS


def test_the_differential_reads_in_plain_words_with_numbers() -> None:
    incident = _leak((ago(25), ago(24), ago(22)))
    diagnosis = diagnose(incident, strict=True)
    report = build_report(incident, diagnosis, generated_at=incident.collected_at)
    markdown = render_markdown(report)
    section = markdown[markdown.index("## Differential diagnosis") :].split("\n## ", 1)[0]
    assert "- **Idle in transaction** (`idle-in-transaction`): ruled out: 0 transactions" in section
    assert "3 of 3 idle in transaction stayed unchanged over 2.0s" in section
    assert "open 25s, longer than pool_timeout (1.0s)" in section
    assert "&gt;" not in section and "&lt;" not in section
    plain = json.loads(render_json(report))["differential"]
    assert {"runbook", "title", "verdict", "confidence", "reason"} == set(plain["considered"][0])
    assert plain["considered"][0]["title"] == "Idle in transaction"
