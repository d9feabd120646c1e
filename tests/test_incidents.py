"""Leaks and their look-alikes as real apps under load: the right runbook first, the code path
named, and a differential section in report.md and report.json."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from pooldoctor.diagnosis import diagnose
from pooldoctor.evidence import Evidence
from pooldoctor.findings import Diagnosis, Severity
from pooldoctor.lab.cluster import TempCluster
from pooldoctor.lab.incidents import (
    BACKUP_APP,
    LEAK_AGE_SECONDS,
    NEIGHBOUR_APP,
    POOL,
    Capture,
    anyio_thread_leak,
    async_gc_leak,
    exception_path_leak,
    streamed_export,
    threadpool_deadlock,
)
from pooldoctor.report.build import build_report
from pooldoctor.report.render import render_json, render_markdown

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:The garbage collector is trying to clean up"),
]
LEAK_MAX_AGE_SECONDS = 30.0  # 10-20 s on an idle machine; the bound only catches a broken lab


def _diagnosed(capture: Capture) -> Diagnosis:
    diagnosis = diagnose(capture.evidence, strict=True)
    assert diagnosis.findings, capture.name
    return diagnosis


def _top(capture: Capture, runbook: str) -> Diagnosis:
    diagnosis = _diagnosed(capture)
    ranked = [(f.runbook, f.severity.value, f.confidence) for f in diagnosis.findings]
    assert diagnosis.findings[0].runbook == runbook, (capture.name, ranked)
    assert diagnosis.findings[0].severity in (Severity.CRITICAL, Severity.WARNING)
    return diagnosis


def _has_differential(evidence: Evidence, diagnosis: Diagnosis) -> None:
    report = build_report(evidence, diagnosis, generated_at=evidence.collected_at)
    plain = json.loads(render_json(report))
    differential = plain["differential"]
    assert differential["for"] == diagnosis.findings[0].runbook
    assert differential["considered"], "the look-alikes are listed"
    assert all(item["reason"] for item in differential["considered"])
    assert "## Differential diagnosis" in render_markdown(report)


def _leaked_ages(evidence: Evidence) -> list[float]:
    assert evidence.postgres is not None
    last = evidence.postgres.samples[-1]
    return [
        (last.at - b.xact_start).total_seconds()
        for b in last.backends
        if b.state == "idle in transaction" and b.xact_start is not None
        and b.application_name and b.application_name.startswith("orders")
    ]  # fmt: skip


@pytest.fixture(scope="module")
def seed_leak(pg: TempCluster, tmp_path_factory: pytest.TempPathFactory) -> list[Capture]:
    return exception_path_leak(pg, tmp_path_factory.mktemp("seed-leak"))


@pytest.mark.parametrize("payload", ["plain", "text", "prometheus", "old-burst", "neighbours"])
def test_exception_path_leak_is_a_leak_named_down_to_its_frame(
    seed_leak: list[Capture], payload: str
) -> None:
    capture = next(c for c in seed_leak if c.name == payload)
    ages = _leaked_ages(capture.evidence)
    assert len(ages) == POOL
    assert all(LEAK_AGE_SECONDS <= age <= LEAK_MAX_AGE_SECONDS for age in ages), ages
    assert all(not s.holders for i in capture.evidence.pools for s in i.samples)
    diagnosis = _top(capture, "connection-leak")
    top = diagnosis.findings[0]
    assert "OrderRejected" in top.summary and "in _orders" in top.summary
    assert f"explains {POOL} of {POOL}" in top.summary
    assert "x the p99 request" in top.summary and "x pool_timeout" in top.summary
    assert "pooldoctor scan flags this function too" in top.summary and "PD101" in top.summary
    assert "idle-in-transaction" not in {f.runbook for f in diagnosis.findings[:1]}
    _has_differential(capture.evidence, diagnosis)


def test_neighbours_are_sampled_but_not_the_app(seed_leak: list[Capture]) -> None:
    capture = next(c for c in seed_leak if c.name == "neighbours")
    assert capture.evidence.postgres is not None
    last = capture.evidence.postgres.samples[-1].backends
    names = {b.application_name: b.state for b in last}
    assert names.get(NEIGHBOUR_APP) == "idle in transaction" and names.get(BACKUP_APP) == "active"
    neighbour = [b for b in last if b.application_name == NEIGHBOUR_APP]
    app = [b for b in last if b.application_name == "orders-api"]
    assert len(neighbour) > len(app) == POOL, "the neighbour holds more sessions than the app"
    assert capture.evidence.config is not None and capture.evidence.config.application_name is None
    top = _diagnosed(capture).findings[0]
    assert "application 'orders-api' is the app because its sessions match the pool-status" in (
        top.summary
    )
    assert f"application '{NEIGHBOUR_APP}' has more sessions" in top.summary
    assert top.evidence["app"]["application_name"] == "orders-api"
    assert BACKUP_APP not in top.summary


def test_old_burst_is_in_the_log_but_not_the_cause(seed_leak: list[Capture]) -> None:
    capture = next(c for c in seed_leak if c.name == "old-burst")
    exceptions = [e for log in capture.evidence.logs if log.app for e in log.app.exceptions]
    old = [e for e in exceptions if e.type.endswith("RenderTimeout")]
    assert old and max(e.at for e in old) < capture.evidence.collected_at - timedelta(days=1)
    top = _diagnosed(capture).findings[0]
    assert "RenderTimeout" not in top.summary


def test_leak_in_a_threadpool_whose_threads_stay_alive(pg: TempCluster, tmp_path: Path) -> None:
    captures = exception_path_leak(pg, tmp_path, worker_threads=POOL + 1, instrumented=True)
    holders = [h for c in captures for i in c.evidence.pools for s in i.samples for h in s.holders]
    assert holders and all(h.thread_alive is True for h in holders), "worker threads alive"
    for capture in captures:
        assert capture.worker_threads_alive >= POOL, "the threads that leaked are still alive"
        diagnosis = _top(capture, "connection-leak")
        assert "in _orders" in diagnosis.findings[0].summary
        _has_differential(capture.evidence, diagnosis)


def test_uninstrumented_leak_in_a_separate_anyio_process(pg: TempCluster, tmp_path: Path) -> None:
    capture = anyio_thread_leak(pg, tmp_path)
    samples = [s for i in capture.evidence.pools for s in i.samples]
    assert samples and all(s.payload_format == "json" and not s.holders for s in samples)
    assert all(s.checked_out == POOL for s in samples), "pinned by the leak"
    assert capture.worker_threads_alive > POOL, "AnyIO's worker threads outlive their requests"
    assert capture.load.statuses, "the waiters were answered (500 after pool_timeout)"
    diagnosis = _top(capture, "connection-leak")
    summary = diagnosis.findings[0].summary
    assert "OrderRejected" in summary and "anyioapp.py" in summary and "in orders" in summary
    assert f"explains {POOL} of {POOL}" in summary
    _has_differential(capture.evidence, diagnosis)


@pytest.mark.parametrize(
    ("cancellations", "runbook"),
    [(False, "connection-leak"), (True, "async-cancellation-leak")],
)
def test_async_gc_leak_needs_cancellation_evidence(
    pg: TempCluster, tmp_path: Path, cancellations: bool, runbook: str
) -> None:
    capture = async_gc_leak(pg, tmp_path, cancellations=cancellations)
    moments = [m for log in capture.evidence.logs if log.app for m in log.app.moments]
    assert any(m.kind == "gc_cleanup" for m in moments)
    assert any(m.kind == "cancellation" for m in moments) is cancellations
    diagnosis = _top(capture, runbook)
    if not cancellations:
        assert "async-cancellation-leak" not in {f.runbook for f in diagnosis.findings}
        assert "LookupFailed" in diagnosis.findings[0].summary
    _has_differential(capture.evidence, diagnosis)


def test_streamed_export_holds_sessions(pg: TempCluster, tmp_path: Path) -> None:
    capture = streamed_export(pg, tmp_path)
    assert capture.evidence.postgres is not None
    queries = [b.query or "" for b in capture.evidence.postgres.samples[-1].backends]
    assert any(q.startswith("FETCH FORWARD") for q in queries)
    diagnosis = _top(capture, "streaming-holds-session")
    _has_differential(capture.evidence, diagnosis)


def test_threadpool_deadlock(pg: TempCluster, tmp_path: Path) -> None:
    capture = threadpool_deadlock(pg, tmp_path)
    assert capture.load.count(500) > 0
    diagnosis = _top(capture, "threadpool-deadlock")
    assert "in _write_audit" in diagnosis.findings[0].summary
    _has_differential(capture.evidence, diagnosis)
