"""End to end: each failure mode reproduced for real, captured, diagnosed with its runbook first.

Set POOLDOCTOR_SAVE_SCENARIOS=1 to refresh tests/data/scenarios/<mode>.json from these runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pooldoctor.diagnosis import diagnose
from pooldoctor.evidence import Backend, Evidence, LogEvent, PoolSample, SourceState
from pooldoctor.findings import Role, Severity, Status
from pooldoctor.lab.scenarios import (
    LEAK_POOL,
    MAX_CONN_POOL,
    MAX_CONN_WORKERS,
    SAVE_ENV,
    ScenarioRun,
    run_scenario,
    save_scenario_evidence,
)

pytestmark = pytest.mark.slow

SCENARIO_DIR = Path(__file__).parent / "data" / "scenarios"
INCIDENTS = (
    "connection-leak",
    "pool-undersized",
    "slow-queries",
    "lock-contention",
    "idle-in-transaction",
    "server-max-connections",
    "stale-connections",
    "connect-timeouts",
)


# --- what each situation must look like, checked on the raw evidence before any diagnosis ----


def _pool_samples(evidence: Evidence) -> list[PoolSample]:
    return [sample for instance in evidence.pools for sample in instance.samples]


def _app_backends(evidence: Evidence, sample: int) -> list[Backend]:
    assert evidence.postgres is not None
    backends = evidence.postgres.samples[sample].backends
    return [b for b in backends if b.usename == "lab_app"]


def _log_events(evidence: Evidence) -> dict[LogEvent, int]:
    counts: dict[LogEvent, int] = {}
    for log in evidence.logs:
        for summary in log.events:
            counts[summary.event] = counts.get(summary.event, 0) + summary.count
    return counts


def _saturated(sample: PoolSample) -> bool:
    return sample.checked_out is not None and sample.checked_out == sample.size


def leak_situation(run: ScenarioRun) -> None:
    samples = _pool_samples(run.evidence)
    assert all(s.checked_out == LEAK_POOL for s in samples), "leaked checkouts stay held"
    held = [h for s in samples for h in s.holders]
    assert len(held) == LEAK_POOL * len(samples)
    assert all(h.thread_alive is False and h.origin.endswith(" in _orders") for h in held)
    first, last = _app_backends(run.evidence, 0), _app_backends(run.evidence, -1)
    assert {b.state for b in first} == {"idle in transaction"}
    assert {(b.pid, b.xact_start) for b in first} == {(b.pid, b.xact_start) for b in last}
    assert _log_events(run.evidence).get(LogEvent.POOL_TIMEOUT, 0) > 0


def undersized_situation(run: ScenarioRun) -> None:
    samples = _pool_samples(run.evidence)
    assert _saturated(samples[0])
    assert not _saturated(samples[-1]), "the pool recovers once the peak is over"
    assert {b.state for b in _app_backends(run.evidence, 0)} <= {"active", "idle in transaction"}
    assert _log_events(run.evidence).get(LogEvent.POOL_TIMEOUT, 0) > 0


def slow_situation(run: ScenarioRun) -> None:
    assert all(_saturated(s) for s in _pool_samples(run.evidence))
    backends = _app_backends(run.evidence, -1)
    assert backends and all(b.state == "active" and b.wait_event_type != "Lock" for b in backends)
    assert _log_events(run.evidence).get(LogEvent.POOL_TIMEOUT, 0) > 0


def lock_situation(run: ScenarioRun) -> None:
    backends = _app_backends(run.evidence, -1)
    blocked = [b for b in backends if b.wait_event_type == "Lock" and b.blocking_pids]
    holder = [b for b in backends if b.application_name == "nightly-batch"]
    assert len(holder) == 1 and holder[0].state == "idle in transaction"
    assert len(blocked) >= 2
    assert any(holder[0].pid in b.blocking_pids for b in blocked)


def idle_tx_situation(run: ScenarioRun) -> None:
    assert all(_saturated(s) for s in _pool_samples(run.evidence))
    first, last = _app_backends(run.evidence, 0), _app_backends(run.evidence, -1)
    assert any(b.state == "idle in transaction" for b in last)
    assert {b.xact_start for b in first} != {b.xact_start for b in last}, "transactions rotate"


def max_connections_situation(run: ScenarioRun) -> None:
    assert len(run.evidence.pools) == MAX_CONN_WORKERS
    assert run.evidence.config is not None
    assert run.evidence.config.workers == MAX_CONN_WORKERS
    assert run.evidence.config.pool_size == MAX_CONN_POOL
    events = _log_events(run.evidence)
    assert events.get(LogEvent.RESERVED_SLOTS, 0) + events.get(LogEvent.TOO_MANY_CLIENTS, 0) > 0


def stale_situation(run: ScenarioRun) -> None:
    assert run.load.count(500) > 0, "first uses of the cut connections fail"
    assert not any(_saturated(s) for s in _pool_samples(run.evidence))
    events = _log_events(run.evidence)
    assert events.get(LogEvent.SERVER_CLOSED, 0) + events.get(LogEvent.ADMIN_SHUTDOWN, 0) > 0


def connect_situation(run: ScenarioRun) -> None:
    assert run.load.count(200) == 0
    assert _log_events(run.evidence).get(LogEvent.CONNECT_TIMEOUT, 0) > 0
    assert _app_backends(run.evidence, -1) == []


def quiet_situation(run: ScenarioRun) -> None:
    assert run.load.count(200) == run.load.total > 0
    assert not any(_saturated(s) for s in _pool_samples(run.evidence))


SITUATIONS: dict[str, Callable[[ScenarioRun], None]] = {
    "connection-leak": leak_situation,
    "pool-undersized": undersized_situation,
    "slow-queries": slow_situation,
    "lock-contention": lock_situation,
    "idle-in-transaction": idle_tx_situation,
    "server-max-connections": max_connections_situation,
    "stale-connections": stale_situation,
    "connect-timeouts": connect_situation,
    "missing-timeouts": quiet_situation,
    "healthy": quiet_situation,
}


def _reproduce(mode: str, tmp_path: Path) -> ScenarioRun:
    run = run_scenario(mode, tmp_path)
    failed = [s for s in run.evidence.sources if s.status is not SourceState.OK]
    assert not failed, f"every source must be collected: {failed}"
    if os.environ.get(SAVE_ENV) == "1":
        save_scenario_evidence(run, SCENARIO_DIR)
    SITUATIONS[mode](run)
    return run


@pytest.mark.parametrize("mode", INCIDENTS)
def test_incident_ranks_its_runbook_first(mode: str, tmp_path: Path) -> None:
    run = _reproduce(mode, tmp_path)
    diagnosis = diagnose(run.evidence, strict=True)
    assert diagnosis.findings, "an incident must produce findings"
    top = diagnosis.findings[0]
    assert top.runbook == mode, [
        (f.runbook, f.severity.value, f.confidence) for f in diagnosis.findings
    ]
    assert top.severity in (Severity.CRITICAL, Severity.WARNING)
    assert diagnosis.status in (Status.CRITICAL, Status.WARNING)


def test_missing_timeouts_is_a_risk_not_an_incident(tmp_path: Path) -> None:
    run = _reproduce("missing-timeouts", tmp_path)
    diagnosis = diagnose(run.evidence, strict=True)
    top = diagnosis.findings[0]
    assert top.runbook == "missing-timeouts"
    assert top.role is Role.RISK
    assert diagnosis.status is Status.WARNING
    assert not any(
        f.role is Role.CAUSE and f.severity is not Severity.INFO for f in diagnosis.findings
    )


def test_healthy_system_is_ok(tmp_path: Path) -> None:
    run = _reproduce("healthy", tmp_path)
    diagnosis = diagnose(run.evidence, strict=True)
    assert diagnosis.status is Status.OK
    assert all(f.severity is Severity.INFO for f in diagnosis.findings), diagnosis.findings
