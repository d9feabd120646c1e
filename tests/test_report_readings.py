"""The report reads the checks' Readings: same app, same lock waiters, same root blockers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pooldoctor.diagnosis import diagnose
from pooldoctor.evidence import Evidence, evidence_from_json
from pooldoctor.findings import Finding
from pooldoctor.readings.thresholds import STUCK_SECONDS
from pooldoctor.report import build_report
from pooldoctor.report.model import EntryKind, Report
from pooldoctor.report.timeline import MAX_STUCK_LISTED
from tests.evidence_builders import (
    NOW,
    SAMPLE_TIMES,
    activity,
    ago,
    backend,
    evidence,
    idle_in_tx,
    pool,
    pool_sample,
    postgres,
)

DATA = Path(__file__).parent / "data"
LOCK_CASES = (
    DATA / "checks" / "lock-contention.failing.json",  # psql root blocker, 25 min old
    DATA / "scenarios" / "lock-contention.json",  # lab run: another app's 3 s old transaction
)
PID = re.compile(r"\bpid (\d+)\b")


def _report(ev: Evidence) -> tuple[list[Finding], Report]:
    diagnosis = diagnose(ev)
    return list(diagnosis.findings), build_report(ev, diagnosis, generated_at=ev.collected_at)


def _lock_finding(findings: list[Finding]) -> dict[str, Any]:
    return next(f for f in findings if f.check == "lock-contention").evidence


def _stuck_rows(report: Report) -> list[str]:
    return [e.event for e in report.timeline if e.kind is EntryKind.POSTGRES]


def _first_pid(text: str) -> int:
    match = PID.search(text)
    assert match is not None, text
    return int(match.group(1))


@pytest.mark.parametrize("path", LOCK_CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_the_report_names_the_root_blockers_and_waiters_the_check_names(path: Path) -> None:
    findings, report = _report(evidence_from_json(path.read_text(encoding="utf-8")))
    facts = _lock_finding(findings)
    roots = {root["pid"] for root in facts["root_blockers"]}
    rows = _stuck_rows(report)
    listed_roots = {_first_pid(row) for row in rows if "root blocker of" in row}
    waits = [row for row in rows if "now waiting for a lock" in row]
    summarised = sum(
        int(m.group(1)) for row in rows if (m := re.match(r"(\d+) more lock waits", row))
    )
    assert roots and listed_roots == roots
    assert {_first_pid(row) for row in waits} <= set(facts["waiting_pids"])
    assert len(waits) + summarised == len(facts["waiting_pids"])
    assert report.lead is not None
    for pid in roots:
        assert f"root blocker pid {pid} " in report.lead.where


def test_a_root_blocker_too_young_to_be_stuck_is_still_listed() -> None:
    """The lab's blocker is 3 s old, far below STUCK_SECONDS: it is listed as the cause anyway,
    and the oldest stuck work is its transaction, not one of the waits it causes."""
    ev = evidence_from_json(LOCK_CASES[1].read_text(encoding="utf-8"))
    findings, report = _report(ev)
    root = _lock_finding(findings)["root_blockers"][0]
    assert root["xact_seconds"] < STUCK_SECONDS
    oldest = {kt.name: kt for kt in report.key_times}["oldest_stuck"]
    assert f"pid {root['pid']} ({root['application_name']})" in oldest.basis


def test_where_names_the_app_the_checks_identified_not_every_busy_client() -> None:
    ev = evidence_from_json(LOCK_CASES[1].read_text(encoding="utf-8"))
    findings, report = _report(ev)
    app = _lock_finding(findings)["app"]["application_name"]
    assert report.lead is not None
    apps = next(p for p in report.lead.where.split("; ") if p.startswith("app "))
    assert apps == f"app '{app}'"


def _root_behind_older_transactions() -> Evidence:
    """Seven of the app's transactions idle for 10+ min, and a young psql transaction that
    blocks two of the app's sessions."""
    at = SAMPLE_TIMES[-1]
    old = [idle_in_tx(100 + i, ago(600 + 10 * i, at)) for i in range(MAX_STUCK_LISTED + 2)]
    blocker = idle_in_tx(
        900, ago(20, at), app="psql", user="admin", query="ALTER TABLE t ADD c int"
    )
    waiters = [
        backend(
            200 + i,
            "active",
            xact_start=ago(15, at),
            query_start=ago(15, at),
            wait_event_type="Lock",
            wait_event="relation",
            blocking=(900,),
            query="SELECT * FROM t",
        )
        for i in range(2)
    ]
    pg = postgres(activity(at, [*old, blocker, *waiters]))
    samples = [pool_sample(t, 30, waiting=3) for t in SAMPLE_TIMES]
    return evidence(pg=pg, pools=[pool(*samples)], now=NOW)


def test_a_root_blocker_is_listed_even_past_the_listing_cap() -> None:
    findings, report = _report(_root_behind_older_transactions())
    assert [root["pid"] for root in _lock_finding(findings)["root_blockers"]] == [900]
    rows = _stuck_rows(report)
    listed = [row for row in rows if "began the transaction" in row]
    assert len(listed) == MAX_STUCK_LISTED  # the youngest, yet listed: it is the cause
    assert any(row.startswith("pid 900 (psql)") and "root blocker of 2" in row for row in listed)
    assert any(row.startswith("3 more idle transactions") for row in rows)


def test_a_short_lock_wait_is_queuing_for_check_and_report_alike() -> None:
    """Waits under LOCK_WAIT_MIN_SECONDS are ordinary row-lock queuing: no finding, no row."""
    ev = evidence_from_json((DATA / "checks" / "healthy-short-waits.json").read_text("utf-8"))
    findings, report = _report(ev)
    assert not [f for f in findings if f.check == "lock-contention"]
    assert not [row for row in _stuck_rows(report) if "waiting for a lock" in row]


LEAK_CASES = (
    DATA / "checks" / "connection-leak.failing.json",  # 18 transactions held 10+ min
    DATA / "scenarios" / "connection-leak.json",  # lab run: 3 held 6 s, past a 3 s baseline
)


@pytest.mark.parametrize("path", LEAK_CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_the_report_lists_the_transactions_the_leak_claims(path: Path) -> None:
    """However young by the report's own gateway rule: the leak judged them by the app's
    baseline, and the report's stuck list must name the same sessions."""
    ev = evidence_from_json(path.read_text(encoding="utf-8"))
    findings, report = _report(ev)
    leak = next(f for f in findings if f.check == "connection-leak").evidence
    assert ev.postgres is not None
    latest = ev.postgres.samples[-1]
    in_tx = {b.pid for b in latest.backends if (b.state or "").startswith("idle in transaction")}
    claimed = set(leak["stuck_pids"]) & in_tx
    rows = [row for row in _stuck_rows(report) if "began the transaction" in row]
    summarised = sum(
        int(m.group(1)) for r in _stuck_rows(report) if (m := re.match(r"(\d+) more idle", r))
    )
    assert claimed
    assert {_first_pid(row) for row in rows} <= claimed
    assert len(rows) + summarised == len(claimed)
