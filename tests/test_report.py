"""The report: report.json contract, markdown/HTML/terminal renderings, the report directory."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console

from pooldoctor.evidence import (
    ActivitySample,
    Backend,
    ConnectFailure,
    Evidence,
    Holder,
    LogEvent,
    LogEventSummary,
    LogFileEvidence,
    MinuteCount,
    PoolConfig,
    PoolInstance,
    PoolSample,
    PostgresEvidence,
    SampleError,
    SourceState,
    SourceStatus,
    evidence_to_json,
)
from pooldoctor.findings import Diagnosis, Finding, Role, Severity, Status
from pooldoctor.report import (
    Report,
    build_report,
    print_summary,
    render_html,
    render_json,
    render_markdown,
    write_report_dir,
)

DAY = datetime(2026, 11, 21, tzinfo=UTC)
GENERATED = DAY.replace(hour=9, minute=45, second=12)
COLLECTED = DAY.replace(hour=9, minute=45, second=10)
API1 = "http://api-1.internal:8000/pool-status"
API2 = "http://api-2.internal:8000/pool-status"
TARGET = "postgresql://orders@db.internal:5432/orders"
XSS = "<script>alert('pwned')</script>"


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return DAY.replace(hour=hour, minute=minute, second=second)


def minutes(start: datetime, counts: list[int]) -> tuple[MinuteCount, ...]:
    return tuple(MinuteCount(start + timedelta(minutes=i), c) for i, c in enumerate(counts) if c)


# QueuePool timeouts 09:31..09:44: 212 in 14 minutes, peak 31 at 09:40.
TIMEOUT_COUNTS = [2, 4, 6, 9, 12, 15, 18, 21, 24, 31, 22, 18, 16, 14]


def _leaked_backend(index: int) -> Backend:
    xact = at(9, 29, 58) + timedelta(seconds=40 * index)
    return Backend(
        pid=4242 + index,
        backend_type="client backend",
        usename="orders",
        datname="orders",
        application_name="orders-api",
        client_addr="10.0.3.17",
        state="idle in transaction",
        backend_start=at(9, 2, 11) + timedelta(seconds=index),
        xact_start=xact,
        query_start=xact + timedelta(seconds=1),
        state_change=xact + timedelta(seconds=1),
        wait_event_type="Client",
        wait_event="ClientRead",
        query="UPDATE orders SET status = 'paid', total = 15000 WHERE id = 9931",
    )


def leak_evidence(query: str | None = None) -> Evidence:
    """A leak incident like the seed: orders-api, pool 20 + 10, sessions leaked on an error path."""
    samples = tuple(
        PoolSample(
            at=COLLECTED - timedelta(seconds=10 * (5 - i)),
            payload_format="json",
            size=20,
            checked_out=value,
            checked_in=max(0, 20 - value),
            overflow=max(0, value - 20),
            max_overflow=10,
            timeout=30.0,
            waiting=4 if value >= 30 else 0,
            holders=(
                (
                    Holder("api/orders.py:41 create_order", 912.4, "worker-3"),
                    Holder("api/orders.py:41 create_order", 640.0, "worker-7"),
                )
                if i == 5
                else ()
            ),
        )
        for i, value in enumerate([27, 28, 29, 30, 30, 30])
    )
    backends = [_leaked_backend(i) for i in range(22)]
    backends.append(
        Backend(
            pid=5100,
            backend_type="client backend",
            usename="orders",
            datname="orders",
            application_name="orders-api",
            client_addr="10.0.3.18",
            state="active",
            backend_start=at(9, 40),
            xact_start=at(9, 45, 4),
            query_start=at(9, 45, 4),
            state_change=at(9, 45, 4),
            wait_event_type=None,
            wait_event=None,
            query=query or "SELECT id FROM orders WHERE customer_id = 77",
        )
    )
    app_log = LogFileEvidence(
        path="/var/log/orders-api/app.log",
        flavor="python",
        lines=48210,
        timestamped_lines=48210,
        first=at(9, 0),
        last=at(9, 45, 1),
        events=(
            LogEventSummary(
                LogEvent.POOL_TIMEOUT,
                212,
                at(9, 31, 7),
                at(9, 44, 52),
                minutes(at(9, 31), TIMEOUT_COUNTS),
                (
                    "sqlalchemy.exc.TimeoutError: QueuePool limit of size 20 overflow 10 reached, "
                    "connection timed out, timeout 30.00 (Background on this error at: "
                    "https://sqlalche.me/e/20/3o7r)",
                ),
            ),
            LogEventSummary(
                LogEvent.GC_CLEANUP,
                17,
                at(9, 14, 40),
                at(9, 29, 3),
                minutes(at(9, 14), [1, 0, 2, 1, 0, 0, 3, 1, 0, 2, 1, 0, 2, 1, 1, 2]),
            ),
        ),
    )
    access_log = LogFileEvidence(
        path="/var/log/orders-api/access.log",
        flavor="access",
        lines=91000,
        timestamped_lines=91000,
        first=at(9, 0),
        last=at(9, 45, 2),
        events=(
            LogEventSummary(
                LogEvent.HTTP_5XX,
                370,
                at(9, 31, 38),
                at(9, 45, 0),
                minutes(at(9, 31), [3, 6, 10, 14, 18, 22, 27, 31, 35, 44, 36, 33, 30, 31, 30]),
            ),
        ),
    )
    return Evidence(
        collected_at=COLLECTED,
        started_at=DAY.replace(hour=9, minute=44, second=8),
        pooldoctor_version="0.1.0",
        pools=(
            PoolInstance(API1, samples),
            PoolInstance(
                API2,
                (),
                (SampleError(at(9, 44, 15), "no answer within 5s"),),
            ),
        ),
        postgres=PostgresEvidence(
            target=TARGET,
            connect_seconds=0.04,
            server_version="15.8",
            server_version_num=150008,
            current_user="pooldoctor",
            is_superuser=False,
            settings={
                "max_connections": "100",
                "statement_timeout": "0",
                "idle_in_transaction_session_timeout": "0",
                "superuser_reserved_connections": "3",
            },
            samples=(ActivitySample(COLLECTED, tuple(backends)),),
        ),
        logs=(app_log, access_log),
        config=PoolConfig(
            files=("/etc/orders-api/db.env",),
            pool_size=20,
            max_overflow=10,
            pool_timeout=30.0,
            pool_pre_ping=False,
            workers=4,
        ),
        sources=(
            SourceStatus(API1, "pool_status", SourceState.OK, "6 sample(s)"),
            SourceStatus(
                API2,
                "pool_status",
                SourceState.ERROR,
                "no answer within 5s",
                at(9, 44, 8),
                at(9, 44, 15),
            ),
            SourceStatus(TARGET, "postgres", SourceState.OK, "1 activity sample(s)"),
            SourceStatus(app_log.path, "log", SourceState.OK, "48210 line(s)"),
            SourceStatus(access_log.path, "log", SourceState.OK, "91000 line(s)"),
            SourceStatus("config", "config", SourceState.OK, "1 file(s)"),
        ),
    )


LEAK = Finding(
    id="connection-leak:orders-api",
    check="connection_leak",
    severity=Severity.CRITICAL,
    confidence=0.92,
    title="Connection leak: orders-api sessions are never returned to the pool",
    summary=(
        "22 orders-api sessions have sat idle in transaction for up to 15 minutes while the pool "
        "stayed at 30/30; the garbage collector warned about unreturned connections since 09:14."
    ),
    runbook="connection-leak",
    role=Role.CAUSE,
    evidence={
        "instance": "api-1.internal:8000/pool-status",
        "checked_out": 30,
        "capacity": 30,
        "gc_cleanup_warnings": 17,
        "oldest_xact_start": at(9, 29, 58),
        "leaked_sessions": [
            {"pid": 4242, "state": "idle in transaction", "idle_s": 911.0, "query": "UPDATE|x"},
            {"pid": 4243, "state": "idle in transaction", "idle_s": 871.5, "query": "UPDATE"},
        ],
        "holders_by_origin": {"api/orders.py:41 create_order": 22},
    },
    remediation=(
        "Free the pool now: SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
        "application_name = 'orders-api' AND state = 'idle in transaction';",
        "Fix the leak: open sessions with `with Session(engine) as session:` so error paths "
        "close them.",
        "Add a backstop: ALTER ROLE orders SET idle_in_transaction_session_timeout = '5min';",
        "Add a test fixture that fails when checkedout() is higher after a test than before.",
    ),
)
EXHAUSTED = Finding(
    id="pool-exhausted:api-1",
    check="pool_saturation",
    severity=Severity.WARNING,
    confidence=0.4,
    title="Pool exhausted: 212 QueuePool timeouts (3o7r) in 14 minutes",
    summary="Requests waited 30 s for a connection and failed; a symptom of the leak.",
    runbook="pool-undersized",
    role=Role.SYMPTOM,
    evidence={"timeouts": 212, "peak_per_minute": 31},
    remediation=("Do not raise pool_size before fixing the leak.",),
)
NO_TIMEOUTS = Finding(
    id="missing-timeouts:server",
    check="missing_timeouts",
    severity=Severity.WARNING,
    confidence=0.8,
    title="No idle_in_transaction_session_timeout or statement_timeout on the server",
    summary="Nothing on the server ends a forgotten transaction.",
    runbook="missing-timeouts",
    role=Role.RISK,
    evidence={"statement_timeout": "0", "idle_in_transaction_session_timeout": "0"},
)
TITLES = {"connection-leak": "Connection leak", "pool-undersized": "Pool undersized"}


def leak_report(
    *, runbook_titles: dict[str, str] | None = None, runbook_base_url: str | None = None
) -> Report:
    diagnosis = Diagnosis(Status.CRITICAL, (LEAK, EXHAUSTED, NO_TIMEOUTS))
    return build_report(
        leak_evidence(),
        diagnosis,
        generated_at=GENERATED,
        runbook_titles=runbook_titles,
        runbook_base_url=runbook_base_url,
    )


def test_report_json_keeps_the_contract_keys_and_order() -> None:
    report = leak_report(runbook_titles=TITLES)
    data = json.loads(render_json(report))
    assert list(data)[:7] == [
        "schema",
        "status",
        "generated_at",
        "findings",
        "timeline",
        "sources",
        "summary",
    ]
    assert data["schema"] == "pooldoctor.report/1"
    assert data["status"] == "critical"
    assert data["generated_at"] == "2026-11-21T09:45:12Z"
    assert [f["id"] for f in data["findings"]] == [LEAK.id, EXHAUSTED.id, NO_TIMEOUTS.id]
    first = data["findings"][0]
    assert list(first)[:9] == [
        "id",
        "check",
        "severity",
        "confidence",
        "title",
        "summary",
        "runbook",
        "evidence",
        "remediation",
    ]
    assert first["severity"] == "critical"
    assert first["confidence"] == 0.92
    assert first["runbook"] == "connection-leak"
    assert first["role"] == "cause"
    assert first["runbook_title"] == "Connection leak"
    assert first["runbook_url"] is None
    assert first["evidence"]["oldest_xact_start"] == "2026-11-21T09:29:58Z"
    assert first["remediation"] == list(LEAK.remediation)
    assert [f["role"] for f in data["findings"]] == ["cause", "symptom", "risk"]
    assert data["sources"][1] == {
        "name": API2,
        "status": "error",
        "detail": "no answer within 5s",
        "kind": "pool_status",
    }
    for entry in data["timeline"]:
        assert set(entry) >= {"at", "source", "event"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", entry["at"])
    assert data["timeline"] == sorted(data["timeline"], key=lambda e: e["at"])


def test_report_json_additive_sections() -> None:
    data = json.loads(render_json(leak_report()))
    assert data["window"] == {
        "since": None,
        "until": None,
        "first_evidence": "2026-11-21T09:00:00Z",
        "last_evidence": "2026-11-21T09:45:10Z",
    }
    key_times = {k["name"]: k for k in data["key_times"]}
    assert list(key_times) == ["first_error", "peak_errors", "oldest_stuck", "detection"]
    assert key_times["first_error"]["at"] == "2026-11-21T09:14:40Z"
    assert key_times["first_error"]["inferred"] is False
    assert "app.log" in key_times["first_error"]["inferred_from"]
    # 09:40 is the busiest minute: 31 QueuePool timeouts + 44 HTTP 5xx.
    assert key_times["peak_errors"]["at"] == "2026-11-21T09:40:00Z"
    assert key_times["peak_errors"]["count"] == 75
    # The oldest holder (912.4 s at 09:45:10) began before the oldest xact_start (09:29:58).
    assert key_times["oldest_stuck"]["at"] == "2026-11-21T09:29:57.600000Z"
    assert key_times["oldest_stuck"]["inferred"] is True
    assert key_times["detection"] == {
        "name": "detection",
        "label": "Detection (report generated)",
        "at": "2026-11-21T09:45:12Z",
        "inferred": False,
        "inferred_from": "when pooldoctor generated this report",
    }
    env = data["environment"]
    assert env["postgres_version"] == "15.8"
    assert env["settings"]["idle_in_transaction_session_timeout"] == "0"
    assert env["pool_config"] == {
        "files": ["/etc/orders-api/db.env"],
        "pool_size": 20,
        "max_overflow": 10,
        "pool_timeout": 30.0,
        "pool_pre_ping": False,
        "workers": 4,
    }
    assert data["summary"].startswith("Status CRITICAL. Most probable root cause: Connection leak")
    assert "peaked at 75/min at 09:40" in data["summary"]
    assert any("no answer within 5s" in line for line in data["unavailable"])


def test_runbook_urls_from_base_url() -> None:
    data = json.loads(render_json(leak_report(runbook_base_url="https://runbooks.example/rb")))
    assert (
        data["findings"][0]["runbook_url"]
        == "https://runbooks.example/rb/runbooks/connection-leak/"
    )
    templated = leak_report(runbook_base_url="https://wiki.example/{slug}.html")
    data = json.loads(render_json(templated))
    assert data["findings"][2]["runbook_url"] == "https://wiki.example/missing-timeouts.html"


def test_build_report_is_deterministic() -> None:
    assert render_json(leak_report()) == render_json(leak_report())


def _table_blocks(markdown: str) -> list[list[str]]:
    blocks: list[list[str]] = []
    current: list[str] = []
    for line in markdown.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def _cells(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line)) - 1


def test_markdown_has_tables_and_escapes_pipes() -> None:
    md = render_markdown(leak_report(runbook_base_url="https://runbooks.example"))
    title = "Connection leak: orders-api sessions are never returned to the pool"
    assert md.startswith(f"# {title} (CRITICAL, pooldoctor)\n")
    assert "| Source | Kind | Status | Detail |" in md
    assert "| Moment | Time (UTC) | Inferred | How it was determined |" in md
    assert "| Time (UTC, 2026-11-21) | Source | Event |" in md
    assert (
        "| 09:31:07 | app.log | 09:31–09:44 QueuePool timeouts: 212 in 14 min, "
        "peak 31/min at 09:40 |" in md
    )
    assert "| PID | State | Idle s | Query |" in md
    assert "| 4242 | idle in transaction | 911 | UPDATE\\|x |" in md
    assert "| Garbage-collector cleanup warnings | 17 |" in md
    assert "### 1. Connection leak: orders-api sessions are never returned to the pool" in md
    assert (
        "**Critical** · cause · confidence 92% · runbook: [connection-leak](https://runbooks.example/runbooks/connection-leak/)"
        in md
    )
    assert (
        "1. Free the pool now: `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
        "application_name = 'orders-api' AND state = 'idle in transaction';`" in md
    )
    assert "2. Fix the leak: open sessions with `with Session(engine) as session:` so" in md
    assert "3. Add a backstop: `ALTER ROLE orders SET idle_in_transaction_session_timeout" in md
    assert "## Not collected\n\n- pool_status http://api-2.internal:8000/pool-status" in md
    assert "| idle_in_transaction_session_timeout | 0 |" in md
    for block in _table_blocks(md):
        widths = {_cells(line) for line in block}
        assert len(widths) == 1, block
        assert set(block[1].replace("|", "")) == {"-"}, block


class StrictHTMLChecker(HTMLParser):
    """Fails on unbalanced tags; records external references and scripts."""

    VOID = frozenset({"meta", "link", "br", "hr", "img", "input", "col", "wbr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.scripts = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts += 1
        for name, value in attrs:
            external = value and re.match(r"(?i)\s*(https?:)?//", value)
            if name in ("src", "href") and external and tag != "a":
                self.problems.append(f"external asset <{tag} {name}={value}>")
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _check_html(html: str) -> StrictHTMLChecker:
    checker = StrictHTMLChecker()
    checker.feed(html)
    checker.close()
    assert checker.problems == []
    assert checker.stack == []
    return checker


def test_html_is_self_contained_escaped_and_well_formed() -> None:
    evidence = leak_evidence(query=f"SELECT 1 /* {XSS} */")
    evil = Finding(
        id="slow:1",
        check="slow_queries",
        severity=Severity.WARNING,
        confidence=0.5,
        title=f"Slow query {XSS}",
        summary=f"query {XSS} ran long",
        runbook="slow-queries",
        evidence={"queries": [{"pid": 5100, "query": f"SELECT 1 /* {XSS} */"}]},
        remediation=(f"Cancel it: SELECT pg_cancel_backend(5100); {XSS}",),
    )
    diagnosis = Diagnosis(Status.CRITICAL, (LEAK, evil))
    report = build_report(
        evidence, diagnosis, generated_at=GENERATED, runbook_base_url="https://runbooks.example"
    )
    html = render_html(report)
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in html
    lowered = html.lower()
    assert "<link" not in lowered
    assert "@import" not in lowered
    assert not re.search(r"url\((?!#)", lowered)  # only in-document SVG references
    assert not re.search(
        r"(src|href)\s*=\s*[\"']?(https?:)?//",
        lowered.replace('href="https://runbooks.example/', ""),
    )
    checker = _check_html(html)
    assert checker.scripts == 0
    text = "".join(checker.text)
    assert XSS in text  # shown to the reader as text, never executed
    assert 'class="badge big s-critical"' in html
    assert 'class="card sev-critical"' in html
    assert (
        "<details><summary>Raw evidence (JSON, check <code>slow_queries</code>)</summary>" in html
    )
    assert "<code>SELECT pg_cancel_backend(5100);</code>" in html
    assert "09:31–09:44 QueuePool timeouts: 212 in 14 min, peak 31/min at 09:40" in text


def test_write_report_dir_writes_four_files_atomically(tmp_path: Path) -> None:
    evidence = leak_evidence()
    report = build_report(evidence, Diagnosis(Status.CRITICAL, (LEAK,)), generated_at=GENERATED)
    out = tmp_path / "incident"
    evidence_json = evidence_to_json(evidence)
    written = write_report_dir(report, evidence_json, out)
    names = ["report.md", "report.html", "report.json", "evidence.json"]
    charts = [out / "charts" / f"{chart.slug}.svg" for chart in report.charts]
    assert charts and written == [out / name for name in names] + charts
    assert sorted(p.name for p in out.iterdir()) == sorted([*names, "charts"])
    assert (out / "evidence.json").read_text(encoding="utf-8") == evidence_json
    assert json.loads((out / "report.json").read_text(encoding="utf-8"))["status"] == "critical"
    assert (out / "report.md").read_text(encoding="utf-8") == render_markdown(report)
    # Rewriting replaces the files in place and still leaves no temporary files behind.
    write_report_dir(report, evidence_json, out)
    assert sorted(p.name for p in out.iterdir()) == sorted([*names, "charts"])
    assert sorted((out / "charts").iterdir()) == sorted(charts)


def healthy_evidence() -> Evidence:
    sample = PoolSample(COLLECTED, "json", size=20, checked_out=3, max_overflow=10, waiting=0)
    return Evidence(
        collected_at=COLLECTED,
        started_at=COLLECTED - timedelta(seconds=6),
        pooldoctor_version="0.1.0",
        pools=(PoolInstance(API1, (sample,)),),
        postgres=PostgresEvidence(
            target=TARGET,
            server_version="15.8",
            settings={"max_connections": "100"},
            samples=(ActivitySample(COLLECTED, ()),),
        ),
        sources=(
            SourceStatus(API1, "pool_status", SourceState.OK, "1 sample(s)"),
            SourceStatus(TARGET, "postgres", SourceState.OK, "1 activity sample(s)"),
        ),
    )


def test_healthy_report_says_no_problems_found() -> None:
    report = build_report(healthy_evidence(), Diagnosis(Status.OK), generated_at=GENERATED)
    data = json.loads(render_json(report))
    assert data["status"] == "ok"
    assert data["findings"] == []
    assert data["summary"].startswith("No problems found. 2 of 2 source(s) were collected.")
    assert "3 of 30 connections checked out" in data["summary"]
    assert data["unavailable"] == []
    md = render_markdown(report)
    assert "# No problems found (OK, pooldoctor)" in md
    assert "No problems found: no check reported a warning or a critical finding." in md
    assert "Every requested source was collected." in md
    html = render_html(report)
    _check_html(html)
    assert 'class="healthy"' in html
    assert "No problems found" in html
    output = io.StringIO()
    print_summary(report, Console(file=output, width=100, color_system=None))
    assert "pooldoctor: OK" in output.getvalue()
    assert "No problems found" in output.getvalue()


def failed_evidence() -> Evidence:
    return Evidence(
        collected_at=COLLECTED,
        started_at=COLLECTED - timedelta(seconds=5),
        pooldoctor_version="0.1.0",
        pools=(PoolInstance(API1, (), (SampleError(COLLECTED, "connection refused"),)),),
        postgres=PostgresEvidence(
            target=TARGET,
            connect_failure=ConnectFailure(
                "too_many_clients", "FATAL: sorry, too many clients already", "53300"
            ),
        ),
        logs=(
            LogFileEvidence(
                "/var/log/app.log", "unknown", problems=("cannot read: permission denied",)
            ),
        ),
        sources=(
            SourceStatus(API1, "pool_status", SourceState.ERROR, "connection refused"),
            SourceStatus(
                TARGET,
                "postgres",
                SourceState.ERROR,
                "FATAL: sorry, too many clients already",
                COLLECTED - timedelta(seconds=5),
                COLLECTED - timedelta(seconds=4),
            ),
            SourceStatus(
                "/var/log/app.log", "log", SourceState.ERROR, "cannot read: permission denied"
            ),
        ),
    )


def test_unknown_report_lists_why_each_source_failed() -> None:
    report = build_report(failed_evidence(), Diagnosis(Status.UNKNOWN), generated_at=GENERATED)
    data = json.loads(render_json(report))
    assert data["status"] == "unknown"
    assert data["unavailable"] == [
        f"pool_status {API1}: error: connection refused",
        f"postgres {TARGET}: error: FATAL: sorry, too many clients already",
        "log /var/log/app.log: error: cannot read: permission denied",
    ]
    assert data["summary"].startswith("Status UNKNOWN: pooldoctor could not collect enough")
    # Nothing observed: the window falls back to pooldoctor's own collection times.
    assert data["window"]["first_evidence"] == "2026-11-21T09:45:05Z"
    assert data["window"]["last_evidence"] == "2026-11-21T09:45:10Z"
    first_error = data["key_times"][0]
    assert first_error["inferred"] is True
    assert "too many clients" in first_error["inferred_from"]
    md = render_markdown(report)
    assert "# Not enough evidence (UNKNOWN, pooldoctor)" in md
    assert "No finding could be produced from the collected evidence" in md
    for line in data["unavailable"]:
        assert f"- {line}" in md
    assert "| PostgreSQL | not collected |" in md
    html = render_html(report)
    _check_html(html)
    assert "permission denied" in html
    assert 'class="badge big s-unknown"' in html
    output = io.StringIO()
    print_summary(report, Console(file=output, width=120, color_system=None))
    text = output.getvalue()
    assert "pooldoctor: UNKNOWN" in text
    assert "Sources not collected:" in text
    assert "error   postgres postgresql://orders@db.internal:5432/orders: FATAL" in text


def test_terminal_summary_shows_top_finding_first_steps_and_files(tmp_path: Path) -> None:
    report = leak_report()
    output = io.StringIO()
    written = [tmp_path / "report.md", tmp_path / "report.html"]
    print_summary(report, Console(file=output, width=160, color_system=None), written=written)
    text = output.getvalue()
    assert text.startswith("pooldoctor: CRITICAL\n")
    assert LEAK.title in text
    assert "confidence 92%" in text
    assert "1. Free the pool now: SELECT pg_terminate_backend(pid)" in text
    assert "3. Add a backstop: ALTER ROLE orders" in text
    assert "Add a test fixture" not in text  # only the first three steps
    assert EXHAUSTED.title in text and NO_TIMEOUTS.title in text
    assert "error   pool_status http://api-2.internal:8000/pool-status" in text
    assert f"wrote {written[0]}" in text and f"wrote {written[1]}" in text


@pytest.mark.parametrize("status", list(Status))
def test_every_status_renders(status: Status) -> None:
    findings = (LEAK,) if status in (Status.WARNING, Status.CRITICAL) else ()
    report = build_report(leak_evidence(), Diagnosis(status, findings), generated_at=GENERATED)
    assert f"({status.value.upper()}, pooldoctor)" in render_markdown(report).splitlines()[0]
    _check_html(render_html(report))
    assert json.loads(render_json(report))["status"] == status.value
