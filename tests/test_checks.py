"""Per-check fixtures (healthy and failing), the registry's runbook coverage, signal helpers."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from pooldoctor.checks.registry import CHECKS, CheckSpec, check_named
from pooldoctor.diagnosis import diagnose
from pooldoctor.durations import format_duration as fmt_duration
from pooldoctor.durations import server_setting_seconds
from pooldoctor.evidence import Backend, Evidence, evidence_from_json
from pooldoctor.findings import Finding, Severity
from pooldoctor.lab.scenarios import SCENARIOS
from pooldoctor.readings import read
from pooldoctor.readings.app import identify_app
from pooldoctor.readings.budget import server_budget
from pooldoctor.readings.leak import DEAD_THREAD_CONFIDENCE, is_orphaned
from pooldoctor.readings.logs import recency_weight
from pooldoctor.readings.sessions import session_trend
from pooldoctor.report.keytimes import oldest_stuck
from pooldoctor.runbooks import RUNBOOK_SLUGS
from tests.data.checks import cases
from tests.data.checks.generate import rendered
from tests.evidence_builders import (
    NOW,
    SAMPLE_TIMES,
    active,
    activity,
    backend,
    evidence,
    idle,
    postgres,
)

FIXTURES = Path(__file__).parent / "data" / "checks"
EXPECTED: dict[str, dict[str, object]] = json.loads((FIXTURES / "expected.json").read_text())
FAILING = sorted(name for name, e in EXPECTED.items() if e["check"])
HEALTHY = sorted(name for name, e in EXPECTED.items() if not e["check"])
REPO = Path(__file__).resolve().parent.parent


def load(name: str) -> Evidence:
    return evidence_from_json((FIXTURES / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", FAILING)
def test_failing_fixture_is_reported_by_its_check(name: str) -> None:
    expected = EXPECTED[name]
    spec = check_named(str(expected["check"]))
    findings = list(spec.run(load(name)))
    assert findings, f"{spec.name} found nothing in {name}"
    finding = findings[0]
    assert finding.runbook == expected["runbook"]
    assert finding.severity.value == expected["severity"]
    assert 0.0 < finding.confidence <= 1.0
    assert finding.id.startswith(f"{spec.name}:")
    json.dumps(finding.evidence)  # JSON-ready
    if expected["top"]:
        diagnosis = diagnose(load(name), strict=True)
        assert diagnosis.findings[0].runbook == expected["runbook"], [
            (f.id, f.severity.value, f.confidence) for f in diagnosis.findings
        ]


@pytest.mark.parametrize("name", HEALTHY)
@pytest.mark.parametrize("spec", CHECKS, ids=[spec.name for spec in CHECKS])
def test_healthy_fixture_raises_nothing_actionable(name: str, spec: CheckSpec) -> None:
    loud = [f for f in spec.run(load(name)) if f.severity is not Severity.INFO]
    assert loud == []


@pytest.mark.parametrize("name", HEALTHY)
def test_healthy_fixture_diagnoses_ok(name: str) -> None:
    assert diagnose(load(name), strict=True).status.value == "ok"


def test_fixtures_match_their_builders() -> None:
    stale = [
        name
        for name, text in rendered().items()
        if not (FIXTURES / name).is_file() or (FIXTURES / name).read_text() != text
    ]
    assert stale == [], "run: .venv/bin/python tests/data/checks/generate.py"


def test_every_check_is_exercised_by_a_failing_fixture() -> None:
    assert {spec.name for spec in CHECKS} <= {str(EXPECTED[n]["check"]) for n in FAILING}


def test_check_runbooks_are_known_slugs() -> None:
    for spec in CHECKS:
        assert spec.runbooks and set(spec.runbooks) <= set(RUNBOOK_SLUGS), spec.name
        assert spec.summary.strip()
    assert len({spec.name for spec in CHECKS}) == len(CHECKS)


def test_every_slug_is_reachable_or_explained() -> None:
    reachable = {slug for spec in CHECKS for slug in spec.runbooks}
    for slug in RUNBOOK_SLUGS:
        assert slug in reachable, slug


def test_every_named_runbook_has_a_file() -> None:
    missing = sorted(
        {slug for spec in CHECKS for slug in spec.runbooks}
        - {p.stem for p in (REPO / "runbooks").glob("*.md")}
    )
    assert missing == []


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("30000", 30.0),
        ("30s", 30.0),
        ("5min", 300.0),
        ("1h", 3600.0),
        ("250ms", 0.25),
        ("bogus", None),
        (None, None),
    ],
)
def test_parse_duration(text: str | None, seconds: float | None) -> None:
    assert server_setting_seconds(text) == seconds


def test_recency_weight_fades_to_history() -> None:
    assert recency_weight(NOW - timedelta(minutes=5), NOW) == 1.0
    middle = recency_weight(NOW - timedelta(hours=2), NOW)
    assert 0.1 < middle < 1.0
    assert recency_weight(NOW - timedelta(days=2), NOW) == pytest.approx(0.1)
    assert recency_weight(None, NOW) == 0.0


def test_fmt_duration() -> None:
    assert [fmt_duration(s) for s in (2.5, 45, 877, 10920, 180000)] == [
        "2.5s",
        "45s",
        "14m37s",
        "3h02m",
        "2d02h",
    ]


def test_app_identity_skips_pooldoctor_and_maintenance_tools() -> None:
    at = SAMPLE_TIMES[-1]
    backends = [
        *(idle(i, at, app="pg_dump", user="backup") for i in range(10)),
        *(idle(100 + i, at, app="pooldoctor", user="pooldoctor") for i in range(10)),
        *(active(200 + i, at, 0.1, app="api", user="app") for i in range(3)),
        idle(300, at, app="worker", user="worker"),
    ]
    app = identify_app(postgres(activity(at, backends)))
    assert app is not None
    assert (app.application_name, app.role) == ("api", "app")
    assert "most client backends" in app.reason


def test_unnamed_app_is_identified_by_role() -> None:
    at = SAMPLE_TIMES[-1]
    backends = [idle(i, at, app="", user="shop") for i in range(4)] + [idle(9, at, app="psql")]
    app = identify_app(postgres(activity(at, backends)))
    assert app is not None
    assert (app.application_name, app.usename) == (None, "shop")
    assert app.label == "unnamed application of user 'shop'"


def _odd_evidence() -> list[Evidence]:
    from dataclasses import replace

    from pooldoctor.evidence import ConnectFailure, PoolInstance, PoolSample
    from tests.evidence_builders import evidence, idle_in_tx, pool, pool_sample

    at = SAMPLE_TIMES[-1]
    bare = PoolSample(at=at, payload_format="sqlalchemy_status")
    psycopg_style = PoolSample(
        at=at,
        payload_format="psycopg_pool",
        counters={
            "pool_max": 10,
            "pool_size": 10,
            "pool_available": 0,
            "requests_waiting": 4,
            "connections_num": 3,
            "connections_ms": 9000,
        },
    )
    unbounded = pool_sample(at, 50, max_overflow=-1)
    refused = ConnectFailure("too_many_clients", "FATAL: sorry, too many clients already", "53300")
    return [
        evidence(),
        evidence(pools=[PoolInstance("http://x/pool")]),
        evidence(pools=[pool(bare), pool(psycopg_style), pool(unbounded)]),
        evidence(pg=replace(postgres(connect_failure=refused), settings={})),
        evidence(pg=postgres(activity(at, []))),
        evidence(pg=postgres(activity(at, [idle_in_tx(1, at - timedelta(hours=2))]))),
        evidence(pg=postgres(activity(at, [active(1, at, 1.0, app=None, user=None)]))),
    ]


@pytest.mark.parametrize("index", range(7))
def test_checks_survive_sparse_and_odd_evidence(index: int) -> None:
    diagnosis = diagnose(_odd_evidence()[index], strict=True)
    for finding in diagnosis.findings:
        json.dumps(finding.evidence)


def test_refused_connection_and_psycopg_waiting_are_reported() -> None:
    odd = _odd_evidence()
    refused = diagnose(odd[3], strict=True).findings
    assert refused[0].runbook == "server-max-connections"
    assert refused[0].severity is Severity.CRITICAL
    waiting = [f for f in diagnose(odd[2], strict=True).findings if f.check == "pool-exhausted"]
    assert waiting and waiting[0].severity is Severity.CRITICAL


# --- connection-leak: checkouts held by threads that have finished ----------------------------


def _threads(evidence: Evidence, alive: bool | None, age_scale: float = 1.0) -> Evidence:
    """The same evidence with every holder's thread_alive (and age, scaled) replaced."""
    from dataclasses import replace

    pools = tuple(
        replace(
            instance,
            samples=tuple(
                replace(
                    sample,
                    holders=tuple(
                        replace(h, thread_alive=alive, age_seconds=h.age_seconds * age_scale)
                        for h in sample.holders
                    ),
                )
                for sample in instance.samples
            ),
        )
        for instance in evidence.pools
    )
    return replace(evidence, pools=pools)


def _leak(evidence: Evidence) -> list[Finding]:
    return list(check_named("connection-leak").run(evidence))


def test_finished_threads_make_a_young_leak_with_its_origin() -> None:
    [finding] = _leak(cases.connection_leak_finished_threads())
    assert (
        "4 connections held by threads that have already finished: "
        "app/api/orders.py:42 in create_order (oldest 35s)" in finding.summary
    )
    assert "app/api/items.py" not in finding.summary  # its thread is still running
    assert finding.confidence >= DEAD_THREAD_CONFIDENCE
    assert finding.severity is Severity.CRITICAL
    assert finding.evidence["holders_threads_finished"] == 4
    assert finding.evidence["stuck_pids"] == [4300, 4301, 4302, 4303]
    first, restart, fix = finding.remediation[:3]
    assert first.startswith("Free the leaked backends now")
    assert (
        "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE pid = ANY('{4300,4301,4302,4303}'::int[]) AND application_name = 'api' "
        "AND usename = 'app' AND state IN ('idle in transaction') AND pid <> pg_backend_pid();"
    ) in first
    assert restart.startswith("Rolling-restart")
    assert "after its thread finished" in fix


def test_young_holders_with_running_threads_are_not_a_leak() -> None:
    running = _threads(cases.connection_leak_finished_threads(), alive=True)
    unreported = _threads(cases.connection_leak_finished_threads(), alive=None)
    assert _leak(running) == []
    assert _leak(unreported) == []  # older payloads: only the age rule applies


def test_running_threads_fall_back_to_the_age_rule() -> None:
    """Async checkouts report their event loop's thread, alive: old ones are still leaks."""
    old = _threads(cases.connection_leak_finished_threads(), alive=True, age_scale=3.0)
    [finding] = _leak(old)
    assert "by running threads" in finding.summary
    assert "app/api/orders.py:42 in create_order holds 4" in finding.summary
    assert "threads that have already finished" not in finding.summary
    assert finding.evidence["holders_threads_finished"] == 0


def test_a_checkout_caught_as_its_thread_exits_is_not_a_leak() -> None:
    exiting = _threads(cases.connection_leak_finished_threads(), alive=False, age_scale=0.01)
    assert not any(is_orphaned(h) for i in exiting.pools for s in i.samples for h in s.holders)
    assert _leak(exiting) == []


def test_idle_in_transaction_leaves_the_finished_threads_sessions_to_the_leak() -> None:
    leaked = cases.connection_leak_finished_threads()
    idle_tx = check_named("idle-in-transaction")
    assert list(idle_tx.run(leaked)) == []
    assert list(idle_tx.run(_threads(leaked, alive=True))), "same sessions, threads running"


def test_runbook_slugs_and_lab_scenarios_are_checked_against_the_registry() -> None:
    names = {spec.name for spec in CHECKS}
    assert set(RUNBOOK_SLUGS) == {slug for spec in CHECKS for slug in spec.runbooks}
    assert set(SCENARIOS) - {"healthy"} <= names


@pytest.mark.parametrize("mode", sorted(SCENARIOS))
def test_each_lab_scenario_s_saved_evidence_puts_its_own_check_first(mode: str) -> None:
    """The lab's scenario keys name registered checks, and their captures diagnose that way."""
    saved = REPO / "tests" / "data" / "scenarios" / f"{mode}.json"
    diagnosis = diagnose(evidence_from_json(saved.read_text(encoding="utf-8")), strict=True)
    if mode == "healthy":
        assert diagnosis.status.value == "ok"
    else:
        assert diagnosis.findings[0].check == check_named(mode).name


@pytest.mark.parametrize(
    "fixture",
    sorted(
        str(p.relative_to(REPO))
        for folder in ("checks", "scenarios")
        for p in (REPO / "tests" / "data" / folder).glob("*.json")
        if p.name != "expected.json"
    ),
)
def test_every_finding_carries_the_identity_its_check_declares(fixture: str) -> None:
    """A check's findings name that check and only the runbooks its SPEC declares; after
    ranking, only a symptom changes runbook, to the cause it points to."""
    incident = evidence_from_json((REPO / fixture).read_text(encoding="utf-8"))
    for spec in CHECKS:
        for finding in spec.run(incident):
            assert finding.check == spec.name and finding.id.startswith(f"{spec.name}:")
            assert finding.runbook in spec.runbooks, (finding.id, finding.runbook)
    ranked = diagnose(incident, strict=True).findings
    by_id = {f.id: f for f in ranked}
    for finding in ranked:
        if "points_to" in finding.evidence:
            assert finding.runbook == by_id[finding.evidence["points_to"]].runbook
        else:
            assert finding.runbook in check_named(finding.check).runbooks, finding.id


def test_each_check_declares_its_identity_in_its_own_module() -> None:
    for spec in CHECKS:
        module = sys.modules[spec.check.__module__]
        assert module.SPEC is spec and spec.name == module.CHECK


def test_aborted_transactions_without_xact_start_still_count_as_held() -> None:
    """PostgreSQL reports xact_start NULL for `idle in transaction (aborted)`: the age comes from
    state_change, and the same aborted session persists across samples."""
    since = NOW - timedelta(minutes=12)
    aborted = [
        backend(pid, "idle in transaction (aborted)", state_change=since, query_start=since)
        for pid in (5100, 5101)
    ]
    ev = evidence(pg=postgres(*(activity(at, aborted) for at in SAMPLE_TIMES)))
    trend = session_trend(ev)
    assert trend is not None
    assert [h.pid for h in trend.idle_in_tx] == [5100, 5101]
    assert trend.idle_in_tx[0].age_seconds == pytest.approx(12 * 60)
    assert [h.pid for h in trend.persistent_in_tx] == [5100, 5101]


@pytest.mark.parametrize(("reserved_roles", "reserved"), [((), 10), (("app",), 0)])
def test_reserved_connections_count_against_the_app_unless_its_role_may_use_them(
    reserved_roles: tuple[str, ...], reserved: int
) -> None:
    settings = {"max_connections": "100", "reserved_connections": "10"}
    sample = activity(NOW, [idle(pid, NOW - timedelta(seconds=5)) for pid in range(7000, 7005)])
    pg = replace(postgres(sample, settings=settings), reserved_connection_roles=reserved_roles)
    budget = server_budget(evidence(pg=pg), identify_app(pg))
    assert budget is not None
    assert budget.reserved == reserved
    assert budget.superuser_reserved == 3  # PostgreSQL's default when the setting is absent


def _lock_case_with(
    extra: Backend | None = None, waitstart_seconds: float | None = None
) -> Finding:
    ev = cases.lock_contention("pg_dump", "backup")
    assert ev.postgres is not None
    last = ev.postgres.samples[-1]
    backends = list(last.backends)
    if waitstart_seconds is not None:
        backends = [
            replace(b, lock_wait_start=last.at - timedelta(seconds=waitstart_seconds))
            if b.wait_event_type == "Lock"
            else b
            for b in backends
        ]
    if extra is not None:
        backends.append(extra)
    samples = (*ev.postgres.samples[:-1], replace(last, backends=tuple(backends)))
    ev = replace(ev, postgres=replace(ev.postgres, samples=samples))
    [finding] = check_named("lock-contention").run(ev)
    return finding


def test_a_blocker_chain_seen_with_hidden_sessions_is_not_presented_as_complete() -> None:
    assert "not complete" not in _lock_case_with().summary
    hidden = replace(
        backend(9100, app="etl", user="etl"),
        state=None,
        backend_type=None,
        query=None,
        query_hidden=True,
    )
    summary = _lock_case_with(hidden).summary
    assert "1 session(s) were hidden from pooldoctor's role" in summary
    assert "not complete" in summary


def test_lock_wait_age_comes_from_pg_locks_waitstart_when_collected() -> None:
    without = _lock_case_with().evidence["longest_wait_seconds"]
    with_waitstart = _lock_case_with(waitstart_seconds=without + 600).evidence
    assert with_waitstart["longest_wait_seconds"] == pytest.approx(without + 600)


def _with_hidden_app_session(ev: Evidence) -> Evidence:
    """Every sample gains one of the app's sessions whose state this role may not read."""
    assert ev.postgres is not None
    app = identify_app(ev.postgres)
    assert app is not None
    hidden = replace(
        backend(9900, app=app.application_name, user=app.role or app.usename),
        state=None,
        backend_type=None,
        query=None,
        query_hidden=True,
        xact_start=None,
        query_start=None,
        state_change=None,
    )
    samples = tuple(replace(s, backends=(*s.backends, hidden)) for s in ev.postgres.samples)
    return replace(ev, postgres=replace(ev.postgres, samples=samples))


@pytest.mark.parametrize(
    ("case", "check"),
    [
        (cases.idle_in_transaction, "idle-in-transaction"),
        (cases.connection_leak, "connection-leak"),
        (cases.async_cancellation_leak, "async-cancellation-leak"),
        (cases.slow_queries, "slow-queries"),
        (cases.pool_undersized, "pool-undersized"),
        (cases.server_max_connections, "server-max-connections"),
    ],
)
def test_counts_seen_with_hidden_app_sessions_say_they_are_not_complete(
    case: Callable[[], Evidence], check: str
) -> None:
    """Every finding whose counts rest on pg_stat_activity states marks them when some of the
    app's sessions were hidden from pooldoctor's role; without hidden sessions it does not."""
    ev = case()
    marker = "1 session(s)"
    [plain] = [f for f in check_named(check).run(ev) if f.severity is not Severity.INFO]
    assert "hidden from pooldoctor's role" not in plain.summary
    [marked] = [
        f
        for f in check_named(check).run(_with_hidden_app_session(ev))
        if f.severity is not Severity.INFO
    ]
    assert "hidden from pooldoctor's role" in marked.summary
    assert marker in marked.summary
    if check == "server-max-connections":
        assert "the total includes 1 session(s)" in marked.summary
    else:
        assert "lower bound" in marked.summary


def test_oldest_stuck_time_is_marked_incomplete_when_sessions_were_hidden() -> None:
    ev = cases.idle_in_transaction()
    plain = oldest_stuck(read(ev))
    assert plain.complete and plain.at is not None
    marked = oldest_stuck(read(_with_hidden_app_session(ev)))
    assert not marked.complete
    assert marked.at == plain.at
    assert "1 session(s) were hidden from pooldoctor's role" in marked.basis
    assert "may be older" in marked.basis


def test_a_failover_reconnects_least_disruptively_and_a_read_only_primary_is_left_alone() -> None:
    failover = cases.failover_read_only()
    [moved] = check_named("failover-read-only").run(failover)
    assert "RECONNECT" in moved.remediation[0] and "RELOAD" in moved.remediation[0]
    assert "standby" in moved.summary
    assert failover.postgres is not None
    primary = replace(
        failover.postgres,
        in_recovery=False,
        settings={**failover.postgres.settings, "default_transaction_read_only": "on"},
    )
    [refusing] = check_named("failover-read-only").run(replace(failover, postgres=primary))
    assert refusing.remediation[0].startswith("Do not recycle the pool")
    assert not any("RECONNECT" in step for step in refusing.remediation)


# A first step must stop the bleeding with the least disruption: never a redesign, an upgrade,
# a server restart or a change to plan, and never a diagnosis the evidence already holds.
NOT_A_FIRST_STEP = (
    "Upgrade",
    "Planned change",
    "pool_mode = transaction",
    "PgBouncer (transaction mode) in front",
    "max_connections: it needs a server restart",
    "Last resort",
    "SHOW POOLS; on the PgBouncer admin console",
)
SIGNAL_CALL = re.compile(r"SELECT pid, pg_(?:terminate|cancel)_backend\(pid\) FROM [^;]*;")


@pytest.mark.parametrize("name", FAILING)
def test_first_step_stops_the_bleeding_and_every_kill_is_one_scoped_statement(name: str) -> None:
    findings = check_named(str(EXPECTED[name]["check"])).run(load(name))
    assert findings
    for found in findings:
        if found.remediation:
            first = found.remediation[0]
            assert not any(marker in first for marker in NOT_A_FIRST_STEP), (found.id, first)
        for step in found.remediation:
            calls = SIGNAL_CALL.findall(step)
            if "pg_terminate_backend" in step or "pg_cancel_backend" in step:
                assert len(calls) == 1, step
            for call in calls:
                assert "pid = ANY('{" in call and "pid <> pg_backend_pid()" in call, call
                assert "application_name = '" in call and "usename = '" in call, call
