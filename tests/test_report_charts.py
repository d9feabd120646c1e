"""Charts, the lead, postmortem sections and runbook links, built from evidence fixtures."""

from __future__ import annotations

import io
import re
from collections import Counter
from datetime import timedelta

from rich.console import Console

from pooldoctor.alerts import rules_document
from pooldoctor.diagnosis import diagnose
from pooldoctor.evidence import LogEvent
from pooldoctor.readings import read
from pooldoctor.report import build_report, print_summary, render_html, render_markdown
from pooldoctor.report.chartdata import build_charts
from pooldoctor.report.charts import chart_svg
from pooldoctor.report.lead import short_target
from pooldoctor.report.model import ChartData, Report
from pooldoctor.report.present import evidence_tables, setting_assignments, step_code
from pooldoctor.report.terminal import TERMINAL_REMEDIATION_STEPS, paste_commands
from pooldoctor.runbooks import (
    first_mitigation_step,
    get_runbook,
    load_runbooks,
    runbook_url,
    section_item_blocks,
    section_items,
)
from tests.data.checks import cases
from tests.evidence_builders import NOW, events, evidence, log_file, pool, pool_sample

_NUMBER_PAIR = re.compile(r"(-?[\d.]+) (-?[\d.]+)")


def _chart(charts: tuple[ChartData, ...], slug: str) -> ChartData:
    return next(chart for chart in charts if chart.slug == slug)


def _report(site_url: str | None = None) -> Report:
    leak = cases.connection_leak()
    return build_report(
        leak,
        diagnose(leak),
        generated_at=NOW,
        runbooks=load_runbooks(),
        runbook_base_url=site_url,
    )


def _drawn_ys(svg: str, key: str) -> list[float]:
    group = svg[svg.index(f'<g id="series-{key}">') :]
    path = re.search(r'<path d="([^"]+)"', group)
    assert path is not None
    return [float(y) for _, y in _NUMBER_PAIR.findall(path.group(1))]


def test_pool_chart_draws_each_sample_at_its_value() -> None:
    values = [4, 9, 17, 30, 30, 22]
    times = [NOW - timedelta(seconds=10 * (len(values) - i)) for i in range(len(values))]
    bundle = evidence(
        pools=[
            pool(
                *(
                    pool_sample(at, v, waiting=max(0, v - 25))
                    for at, v in zip(times, values, strict=True)
                )
            )
        ]
    )
    chart = _chart(build_charts(read(bundle), ()), "pool-usage-1")
    checked_out = next(s for s in chart.series if s.key == "checked-out")
    assert checked_out.ys == tuple(float(v) for v in values)
    assert next(s for s in chart.series if s.key == "capacity").ys == (30.0,) * len(values)
    ys = _drawn_ys(chart_svg(chart), "checked-out")
    assert len(ys) == len(values)
    # One linear map from value to SVG y (which grows downwards) fits every drawn point.
    scale = (ys[3] - ys[0]) / (values[3] - values[0])
    assert scale < 0
    assert all(
        abs(ys[0] + scale * (v - values[0]) - y) < 0.05 for v, y in zip(values, ys, strict=True)
    )


def test_error_chart_counts_are_the_logged_per_minute_counts() -> None:
    leak = cases.connection_leak()
    report = build_report(leak, diagnose(leak), generated_at=NOW)
    chart = _chart(report.charts, "errors-per-minute")
    logged: Counter[tuple[str, object]] = Counter()
    for log in leak.logs:
        for summary in log.events:
            for item in summary.per_minute:
                logged[(summary.event.value, item.minute)] += item.count
    drawn = {
        (series.key, minute): count
        for series in chart.series
        for minute, count in zip(series.xs, series.ys, strict=True)
        if count
    }
    assert drawn == {key: float(count) for key, count in logged.items()}
    assert [mark.label for mark in chart.marks] == ["first error", "peak"]
    assert "QueuePool timeouts" in chart.alt


def test_connection_and_age_charts_count_every_session_and_checkout() -> None:
    leak = cases.connection_leak()
    charts = build_charts(read(leak), ())
    latest = max(leak.postgres.samples, key=lambda s: s.at) if leak.postgres else None
    assert latest is not None
    states = Counter(b.state for b in latest.backends)
    connections = _chart(charts, "server-connections")
    assert {s.label: sum(s.ys) for s in connections.series} == {
        k: float(v) for k, v in states.items()
    }
    ages = _chart(charts, "held-by-age")
    holders = leak.pools[0].samples[-1].holders
    counted = {s.key: sum(s.ys) for s in ages.series}
    assert counted == {"sessions": float(len(latest.backends)), "checkouts": float(len(holders))}
    assert not ages.stacked


def test_charts_have_titles_and_text_alternatives_in_html_and_files_in_markdown() -> None:
    report = _report()
    html = render_html(report)
    assert html.count('<figure class="chart"') == len(report.charts) == 4
    for chart in report.charts:
        assert f'<title id="{chart.slug}-title">' in html
        assert f'<desc id="{chart.slug}-desc">' in html
    markdown = render_markdown(report)
    for chart in report.charts:
        assert f"](charts/{chart.slug}.svg " in markdown


def test_the_same_evidence_draws_the_same_svg() -> None:
    chart = _chart(build_charts(read(cases.connection_leak()), ()), "pool-usage-1")
    assert chart_svg(chart) == chart_svg(chart)


def test_lead_names_cause_place_numbers_and_first_step() -> None:
    report = _report()
    lead = report.lead
    assert lead is not None
    top = report.findings[0]
    assert lead.what.startswith(top.title)
    assert "app/api/orders.py:42 in create_order" in lead.where
    assert "212 QueuePool timeouts" in lead.impact and "since 2026-11-21" in lead.impact
    assert lead.do_now.startswith(top.remediation[0])
    assert f"pooldoctor runbooks show {top.runbook}" in lead.do_now
    markdown = render_markdown(report)
    assert markdown.splitlines()[0] == f"# {top.title} (CRITICAL, pooldoctor)"
    assert markdown.index("- **Do now:**") < markdown.index("## Charts")


def test_postmortem_has_the_template_sections_and_owner_checkboxes() -> None:
    report = _report()
    postmortem = report.postmortem
    assert postmortem is not None
    top = report.findings[0]
    assert postmortem.action_items[: len(top.remediation)] == top.remediation
    assert any(item.startswith("Prevent: ") for item in postmortem.action_items)
    markdown = render_markdown(report)
    sections = ["## Postmortem", "### Impact", "### Detection", "### Timeline (UTC)"]
    sections += ["### Root cause", "### Action items"]
    positions = [markdown.index(section) for section in sections]
    assert positions == sorted(positions) and markdown.index("## Findings") < positions[0]
    boxes = [line for line in markdown.splitlines() if line.startswith("- [ ] ")]
    assert len(boxes) == len(postmortem.action_items)
    assert all(line.endswith("— owner:") for line in boxes)


def test_symptom_is_folded_into_its_cause() -> None:
    report = _report()
    symptoms = [f for f in report.findings if f.role.value == "symptom"]
    assert symptoms and symptoms[0].id in report.findings[0].explains
    markdown = render_markdown(report)
    assert f"### 2. {symptoms[0].title}" not in markdown
    assert f"_Explains the symptom **{symptoms[0].title}**" in markdown


def test_without_site_url_each_finding_names_the_runbook_command_and_first_step() -> None:
    report = _report()
    markdown = render_markdown(report)
    report_settings = {
        name
        for f in report.findings
        for step in f.remediation
        for name in setting_assignments(step)
    }
    kept = 0
    for finding in report.findings:
        step = first_mitigation_step(get_runbook(finding.runbook))
        assert step and f"pooldoctor runbooks show {finding.runbook}" in markdown
        if set(setting_assignments(step)) & report_settings:
            assert finding.runbook_first_step is None, finding.id
        else:
            assert finding.runbook_first_step == step
            kept += 1
    assert kept
    assert (
        "Runbook: `pooldoctor runbooks show connection-leak`. First mitigation step: " in markdown
    )


def test_one_value_per_setting_across_the_report() -> None:
    # The missing-timeouts runbook's example step sets both timeouts to '60s' for role `app`;
    # the findings derive their own values for the real role, and only those are shown.
    report = _report()
    missing = next(f for f in report.findings if f.check == "missing-timeouts")
    generic = first_mitigation_step(get_runbook("missing-timeouts"))
    assert setting_assignments(generic)["idle_in_transaction_session_timeout"] == "60s"
    assert missing.runbook_first_step is None
    markdown = render_markdown(report)
    values: dict[str, set[str]] = {}
    for line in markdown.splitlines():
        for name, value in setting_assignments(line).items():
            values.setdefault(name, set()).add(value)
    assert values.get("idle_in_transaction_session_timeout")
    assert all(len(found) == 1 for found in values.values()), values


def test_action_items_skip_a_step_whose_commands_were_already_listed() -> None:
    report = _report()
    assert report.postmortem is not None
    items = report.postmortem.action_items
    seen: list[str] = []
    for item in items:
        code = step_code(item)
        assert not code or not set(code) <= set(seen), item
        seen.extend(code)
    every_command = {c for f in report.findings for s in f.remediation for c in step_code(s)}
    every_command -= {
        c
        for f in report.findings
        if f.role.value == "symptom" or f.severity.value == "info"
        for s in f.remediation
        for c in step_code(s)
    }
    assert every_command <= set(seen)


def test_setting_assignments_read_sql_in_a_step() -> None:
    step = "Backstop: ALTER ROLE \"app\" SET idle_in_transaction_session_timeout = '5min'; (why)"
    assert setting_assignments(step) == {"idle_in_transaction_session_timeout": "5min"}
    assert setting_assignments("`SET lock_timeout TO 2s`") == {"lock_timeout": "2s"}
    assert setting_assignments("SELECT pg_terminate_backend(42);") == {}


def test_report_and_alerts_share_one_runbook_url_rule() -> None:
    site = "https://ops.example.com/pooldoctor/"
    report = _report(site)
    alert_urls = {
        rule["annotations"]["runbook_url"]
        for group in rules_document(site)["groups"]
        for rule in group["rules"]
    }
    leak_url = runbook_url(site, "connection-leak")
    assert leak_url == "https://ops.example.com/pooldoctor/runbooks/connection-leak/"
    assert report.findings[0].runbook_url == leak_url and leak_url in alert_urls
    assert f'<a href="{leak_url}">' in render_html(report)


def test_evidence_tables_hide_empty_values_and_use_words() -> None:
    tables = evidence_tables(
        {
            "stuck_pids": [1, 2],
            "gc_cleanups": {"events": ["gc_cleanup"], "count": 0, "recent_count": 0},
            "waiting_now": 0,
            "notes": [],
            "points_to": "connection-leak:api",
        }
    )
    assert [t.title for t in tables] == [None]
    assert tables[0].columns == ("Reading", "Value")
    assert tables[0].rows == (("Stuck PIDs", "1, 2"), ("Waiting now", "0"))


def test_per_sample_series_are_a_table_of_samples_not_raw_json() -> None:
    samples = {
        "url": "http://api:8080/pool",
        "at": ["2026-11-21T09:31:04Z", "2026-11-21T09:31:09Z"],
    }
    samples |= {"checked_out": [4, 9], "capacity": [10, 10], "waiting": [0, 2]}
    tables = evidence_tables({"pool": {"samples": 2, "instances": [samples]}})
    assert [t.title for t in tables] == ["Pool", "Pool instances: http://api:8080/pool"]
    series = tables[1]
    assert series.columns == ("At (UTC)", "Checked out", "Capacity", "Waiting")
    assert series.rows == (
        ("2026-11-21 09:31:04", "4", "10", "0"),
        ("2026-11-21 09:31:09", "9", "10", "2"),
    )
    assert tables[0].rows == (("Samples", "2"),)
    nested = evidence_tables({"holds": {"window_seconds": 1.5, "baseline": {"basis": "10x p99"}}})
    assert [(t.title, t.rows) for t in nested] == [
        ("Holds", (("Window seconds", "1.5"),)),
        ("Holds baseline", (("Basis", "10x p99"),)),
    ]
    # Records without per-sample series stay one table with a row per record.
    plain = evidence_tables(
        {"holders": [{"origin": "a.py:1", "count": 2}, {"origin": "b.py:9", "count": 1}]}
    )
    assert plain[0].rows == (("a.py:1", "2"), ("b.py:9", "1"))


def test_plain_words_not_error_codes_in_the_timeline_labels() -> None:
    bundle = evidence(
        logs=[
            log_file(
                events(LogEvent.POOL_TIMEOUT, 5, last=NOW),
                events(LogEvent.STATEMENT_TIMEOUT, 2, last=NOW),
            )
        ]
    )
    report = build_report(bundle, diagnose(bundle), generated_at=NOW)
    text = " ".join(entry.event for entry in report.timeline)
    assert "QueuePool timeouts" in text and "statement timeouts" in text
    assert not re.search(r"\((3o7r|57014)\)", text)


def test_terminal_prints_commands_after_the_box_one_per_line_unwrapped() -> None:
    report = _report()
    printed = io.StringIO()
    print_summary(report, Console(file=printed, width=60, force_terminal=False))
    lines = printed.getvalue().splitlines()
    after_box = lines[next(i for i, line in enumerate(lines) if line.startswith("╰")) + 1 :]
    assert after_box[0] == "Commands (one per line, ready to paste):"
    expected = paste_commands(report.findings[0].remediation[:TERMINAL_REMEDIATION_STEPS])
    assert expected and any(len(command) > 60 for command in expected)
    assert after_box[1 : 1 + len(expected)] == expected


def test_runbook_sections_parse_into_steps() -> None:
    body = (
        "## Mitigation\n\n1. Cancel it:\n\n   ```sql\n   SELECT pg_cancel_backend(42);\n   ```\n\n"
        "2. Then [look](other.md) again,\n   carefully.\n\n## Prevention\n\n- Keep `timeouts`.\n"
    )
    assert section_items(body, "Mitigation") == (
        "Cancel it: `SELECT pg_cancel_backend(42);`",
        "Then look again, carefully.",
    )
    assert section_items(body, "Prevention") == ("Keep `timeouts`.",)
    assert section_item_blocks(body, "Mitigation")[0] == (
        "Cancel it:",
        "",
        "```sql",
        "SELECT pg_cancel_backend(42);",
        "```",
    )


def test_database_target_is_shortened_for_the_lead() -> None:
    assert (
        short_target("host=db.internal port=5432 user=app dbname=orders")
        == "db.internal:5432/orders"
    )
    assert short_target("postgresql://app@db/orders") == "postgresql://app@db/orders"


def test_checkouts_from_one_code_path_are_one_timeline_row() -> None:
    report = _report()
    rows = [e.event for e in report.timeline if e.kind.value == "holder"]
    assert rows == [
        "18 checkouts by app/api/orders.py:42 in create_order began and were still held at "
        "collection time (held 10m22s to 14m37s)",
        "12 checkouts by app/api/items.py:17 in list_items began and were still held at "
        "collection time (held 100ms)",
    ]


def test_a_log_of_days_is_charted_in_wider_bars_with_every_error_counted() -> None:
    three_days = 3 * 24 * 60
    timeouts = events(LogEvent.POOL_TIMEOUT, three_days * 2, last=NOW, minutes=three_days)
    refused = events(LogEvent.TOO_MANY_CLIENTS, 7, last=NOW - timedelta(hours=30), minutes=7)
    charts = build_charts(read(evidence(logs=[log_file(timeouts, refused)])), ())
    chart = _chart(charts, "errors-per-minute")
    assert chart.bar_seconds == 3600.0  # 4320 minutes: hourly bars are the first to fit in 120
    assert chart.title == "Errors per hour by kind" and chart.y_label == "errors per hour"
    assert chart.span is not None
    first, last = chart.span[0], chart.span[1] - timedelta(hours=1)
    assert chart.alt.startswith(f"Log window {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d} ")
    assert {s.key: sum(s.ys) for s in chart.series} == {
        LogEvent.POOL_TIMEOUT.value: float(three_days * 2),
        LogEvent.TOO_MANY_CLIENTS.value: 7.0,
    }
    assert len(chart.series[0].xs) <= 120
    svg = chart_svg(chart)
    drawn = re.findall(r'<g id="series-[a-z_-]+-\d+">', svg)
    assert len(drawn) == sum(1 for s in chart.series for y in s.ys if y)  # no empty bars
    assert re.search(r">\d\d-\d\d \d\d:\d\d<", svg)  # ticks carry the date on a multi-day axis


def test_a_short_log_keeps_one_minute_bars() -> None:
    leak = cases.connection_leak()
    chart = _chart(build_charts(read(leak), ()), "errors-per-minute")
    assert chart.bar_seconds == 60.0 and chart.title == "Errors per minute by kind"
