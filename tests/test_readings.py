"""One reading of the evidence: checks and the report agree on pool fill, durations, timeouts."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from pooldoctor.diagnosis import diagnose
from pooldoctor.evidence import Evidence, LogEvent, PoolSample, SourceState, evidence_from_json
from pooldoctor.findings import Severity
from pooldoctor.readings import read
from pooldoctor.readings.thresholds import HISTORY_WEIGHT
from pooldoctor.report import build as report_build
from pooldoctor.report import build_report, render_html, render_json, render_markdown
from pooldoctor.report.keytimes import build_key_times
from tests.data.checks import cases
from tests.evidence_builders import (
    NOW,
    SAMPLE_TIMES,
    ago,
    config,
    events,
    evidence,
    log_file,
    pool,
)

# Two-unit durations the report used to print beside the findings' compact ones ("14m 37s").
SPACED_DURATION = re.compile(r"\b\d+[dhm] \d+[hms]\b")
OTHER_SECONDS = re.compile(r"\b\d+(?:\.\d+)? m?s\b|\b\d+\.\d\ds\b|\b0\.\ds\b")
IDLE_TX_TIMEOUT = re.compile(r"idle_in_transaction_session_timeout = '([^']+)'")
BUDGET = re.compile(r"(\d+) available \((\d+) max_connections - [^)]*?(\d+) other clients\)")
SCENARIOS = Path(__file__).parent / "data" / "scenarios"


def _psycopg_sample(at: datetime, waiting: int) -> PoolSample:
    """psycopg_pool's get_stats(): no checked_out/waiting fields, only its counters."""
    counters = {
        "pool_min": 4.0,
        "pool_max": 10.0,
        "pool_size": 10.0,
        "pool_available": 0.0,
        "requests_waiting": float(waiting),
    }
    return PoolSample(at=at, payload_format="psycopg_pool", counters=counters)


def _psycopg_waiting() -> Evidence:
    samples = [_psycopg_sample(at, waiting=4) for at in SAMPLE_TIMES]
    return evidence(pools=[pool(*samples)])


def test_a_psycopg_sample_with_requests_waiting_is_full_for_check_and_report() -> None:
    incident = _psycopg_waiting()
    sample = incident.pools[0].samples[-1]
    assert (sample.in_use, sample.queued, sample.full) == (10, 4, True)
    readings = read(incident)
    assert readings.pool.full_always and readings.pool.waiting_now == 4
    diagnosis = diagnose(incident, strict=True)
    exhausted = [f for f in diagnosis.findings if f.check == "pool-exhausted"]
    assert exhausted and exhausted[0].severity is not Severity.INFO
    report = build_report(incident, diagnosis, generated_at=NOW)
    events = [entry.event for entry in report.timeline]
    assert "pool saturated at first sample: 10/10 checked out, 4 waiting" in events
    first_error = build_key_times(read(incident), NOW)[0]
    assert first_error.at == SAMPLE_TIMES[0]
    assert "saturated" in first_error.basis


def test_one_duration_format_and_one_idle_tx_timeout_across_a_whole_report() -> None:
    for incident in (cases.connection_leak(), cases.idle_in_transaction()):
        diagnosis = diagnose(incident, strict=True)
        report = build_report(incident, diagnosis, generated_at=NOW)
        texts = (render_markdown(report), render_html(report), render_json(report))
        for text in texts:
            assert SPACED_DURATION.findall(text) == []
        values = {value for text in texts for value in IDLE_TX_TIMEOUT.findall(text)}
        assert len(values) == 1, values
        assert read(incident).idle_tx_timeout in (60, 120, 300, 600, 900, 1800, 3600)


def test_sub_second_durations_take_the_one_format_too() -> None:
    """Mean holds, waits and request times under a second read '180ms', like '2.5s' and
    '14m37s', not '180 ms' or '0.18s'."""
    for incident in (cases.pool_undersized(), cases.connection_leak(), cases.healthy()):
        report = build_report(incident, diagnose(incident, strict=True), generated_at=NOW)
        for text in (render_markdown(report), render_json(report)):
            assert OTHER_SECONDS.findall(text) == []
    undersized = render_markdown(
        build_report(
            cases.pool_undersized(),
            diagnose(cases.pool_undersized(), strict=True),
            generated_at=NOW,
        )
    )
    assert "180ms mean hold" in undersized


def test_the_report_and_the_findings_print_the_same_duration() -> None:
    incident = cases.connection_leak()
    report = build_report(incident, diagnose(incident, strict=True), generated_at=NOW)
    markdown = render_markdown(report)
    assert "14m37s" in markdown  # pid 4242's transaction: in the finding and in the timeline
    assert "open 14m37s" in markdown


def test_readings_are_built_once_and_frozen() -> None:
    readings = read(cases.connection_leak())
    try:
        readings.label = "other"  # type: ignore[misc]
    except AttributeError:
        pass
    else:
        raise AssertionError("Readings must be frozen")
    assert readings.label == "api"
    assert readings.leak is not None and readings.leak.current
    assert readings.leaked_pids >= {h.pid for h in readings.leak.stuck}


def test_without_idle_in_transaction_sessions_the_default_backstop_is_suggested() -> None:
    quiet = cases.missing_timeouts()
    assert read(quiet).idle_tx_timeout == 300


def test_the_report_redacts_secrets_quoted_by_an_evidence_file_from_elsewhere() -> None:
    incident = cases.healthy()
    leaky = replace(
        incident.sources[0],
        status=SourceState.ERROR,
        detail="could not connect to postgresql://app:hunter2@db/app with password=s3cret",
    )
    incident = replace(incident, sources=(leaky, *incident.sources[1:]))
    report = build_report(incident, diagnose(incident, strict=True), generated_at=NOW)
    for text in (render_markdown(report), render_html(report), render_json(report)):
        assert "hunter2" not in text and "s3cret" not in text


def _two_log_files() -> Evidence:
    app_log = log_file(
        events(LogEvent.POOL_TIMEOUT, 30, last=ago(20), minutes=5, examples=["QueuePool limit"]),
        events(LogEvent.GC_CLEANUP, 4, last=ago(3 * 3600), examples=["non-checked-in connection"]),
        events(LogEvent.PGBOUNCER, 7, last=ago(40), examples=["ERROR: query_wait_timeout"]),
    )
    worker_log = log_file(
        events(LogEvent.PSYCOPG_POOL_TIMEOUT, 6, last=ago(30), examples=["PoolTimeout"]),
        events(LogEvent.PGBOUNCER, 2, last=ago(50), examples=["server conn crashed?"]),
        path="/var/log/worker/app.log",
    )
    return evidence(logs=[app_log, worker_log])


def test_log_signals_per_event_kind_are_held_on_the_readings_with_their_recency() -> None:
    readings = read(_two_log_files())
    by_event = readings.logs.by_event
    assert set(by_event) == {
        LogEvent.POOL_TIMEOUT,
        LogEvent.GC_CLEANUP,
        LogEvent.PGBOUNCER,
        LogEvent.PSYCOPG_POOL_TIMEOUT,
    }
    assert (by_event[LogEvent.POOL_TIMEOUT].count, by_event[LogEvent.POOL_TIMEOUT].recent) == (
        30,
        30,
    )
    old = by_event[LogEvent.GC_CLEANUP]
    assert (old.count, old.recent, old.current) == (4, 0, False)
    assert HISTORY_WEIGHT < old.weight < 1.0, "three hours old: fading, not yet history"
    both = by_event[LogEvent.PGBOUNCER]
    assert (both.count, len(both.files)) == (9, 2)
    assert readings.log(LogEvent.GC_CLEANUP) is old, "a single kind is read once, not re-derived"
    assert not readings.log(LogEvent.DEADLOCK).seen


def test_combined_log_signals_add_up_the_kinds_and_filter_by_example() -> None:
    readings = read(_two_log_files())
    by_event = readings.logs.by_event
    timeouts = readings.pool_timeouts
    assert timeouts.count == by_event[LogEvent.POOL_TIMEOUT].count + 6 == 36
    assert timeouts.recent == 36 and timeouts.files == (
        "/var/log/api/app.log",
        "/var/log/worker/app.log",
    )
    assert timeouts.last == by_event[LogEvent.POOL_TIMEOUT].last
    waits = readings.log(LogEvent.PGBOUNCER, matching=("query_wait_timeout",))
    assert (waits.count, waits.files) == (7, ("/var/log/api/app.log",))


def test_one_server_budget_across_a_whole_report() -> None:
    """Every finding counts the server's free slots the same way, without the app's own sessions."""
    text = (SCENARIOS / "server-max-connections.json").read_text(encoding="utf-8")
    incident = evidence_from_json(text)
    budget = read(incident).budget
    assert budget is not None and budget.other_clients < budget.max_connections
    markdown = render_markdown(build_report(incident, diagnose(incident), generated_at=NOW))
    quoted = set(BUDGET.findall(markdown))
    expected = (str(budget.available), str(budget.max_connections), str(budget.other_clients))
    assert quoted == {expected}, quoted


def test_the_app_s_own_sessions_are_not_other_clients_in_the_pgbouncer_budget() -> None:
    incident = cases.pgbouncer_saturation()
    readings = read(incident)
    assert readings.app is not None and readings.budget is not None
    assert readings.budget.other_clients == 0
    [found] = [
        f for f in diagnose(incident, strict=True).findings if f.check == "pgbouncer-saturation"
    ]
    assert any(readings.budget.arithmetic() in step for step in found.remediation)


def test_the_report_reads_the_readings_the_checks_judged_by(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    incident = cases.connection_leak()
    diagnosis = diagnose(incident, strict=True)
    assert diagnosis.readings is not None and diagnosis.readings.evidence is incident

    def read_again(_evidence: Evidence) -> None:
        raise AssertionError("the report derived the evidence a second time")

    monkeypatch.setattr(report_build, "read", read_again)
    lead = build_report(incident, diagnosis, generated_at=NOW).lead
    pool = diagnosis.readings.pool
    assert lead is not None
    assert f"pool full in {pool.full_samples} of {pool.samples} samples" in lead.impact
    timeouts = diagnosis.readings.logs.by_event[LogEvent.POOL_TIMEOUT].count
    assert f"{timeouts} QueuePool timeouts" in lead.impact


def test_without_database_sessions_findings_are_named_by_the_configured_application_name() -> None:
    """No pg_stat_activity to recognise the app by: its configured application_name names the
    findings, not the pool endpoint's host:port; with neither, the host:port remains."""
    unnamed = cases.pool_exhausted()
    named = replace(unnamed, config=config(application_name="orders-api"))
    assert read(named).label == "orders-api"
    assert [f.id for f in diagnose(named, strict=True).findings] == [
        f.id.replace("api-1:8000", "orders-api") for f in diagnose(unnamed, strict=True).findings
    ]
    assert diagnose(named, strict=True).findings[0].id == "pool-exhausted:orders-api"
    assert read(unnamed).label == "api-1:8000"
