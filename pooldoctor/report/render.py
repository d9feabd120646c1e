"""Render a report as JSON, markdown and self-contained HTML, and write the report directory."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import markupsafe

from pooldoctor import __version__
from pooldoctor.atomic import locked_directory, write_atomic
from pooldoctor.jsonio import format_utc, to_plain
from pooldoctor.report.charts import chart_svg, inline_svg
from pooldoctor.report.model import (
    REPORT_SCHEMA,
    ChartData,
    KeyTime,
    Report,
    ReportFinding,
    TimelineEntry,
)
from pooldoctor.report.present import cell, code_segments, evidence_tables, pretty_json
from pooldoctor.report.textfmt import as_utc, clock, percent, stamp
from pooldoctor.sanitize import clean_tree, outbound_text, strip_controls

REPORT_FILES = ("report.md", "report.html", "report.json", "evidence.json")
CHARTS_DIR = "charts"  # charts/<slug>.svg next to report.md, which shows them as images


def _utc_or_none(moment: Any) -> str | None:
    return None if moment is None else format_utc(moment)


def _finding_plain(finding: ReportFinding) -> dict[str, Any]:
    return {
        "id": finding.id,
        "check": finding.check,
        "severity": finding.severity.value,
        "confidence": finding.confidence,
        "title": finding.title,
        "summary": finding.summary,
        "runbook": finding.runbook,
        "evidence": finding.evidence,
        "remediation": list(finding.remediation),
        "role": finding.role.value,
        "runbook_title": finding.runbook_title,
        "runbook_url": finding.runbook_url,
        "runbook_first_step": finding.runbook_first_step,
        "explains": list(finding.explains),
    }


def _entry_plain(entry: TimelineEntry) -> dict[str, Any]:
    return {
        "at": format_utc(entry.at),
        "source": entry.source,
        "event": entry.event,
        "kind": entry.kind.value,
        "until": _utc_or_none(entry.until),
        "inferred": entry.inferred,
    }


def _key_time_plain(key_time: KeyTime) -> dict[str, Any]:
    plain: dict[str, Any] = {
        "name": key_time.name,
        "label": key_time.label,
        "at": _utc_or_none(key_time.at),
        "inferred": key_time.inferred,
        "inferred_from": key_time.basis,
    }
    if key_time.count is not None:
        plain["count"] = key_time.count
    if not key_time.complete:
        plain["complete"] = False
    return plain


def _chart_plain(chart: ChartData) -> dict[str, Any]:
    return {
        "file": f"{CHARTS_DIR}/{chart.slug}.svg",
        "title": chart.title,
        "alt": chart.alt,
        "series": [
            {
                "key": series.key,
                "label": series.label,
                "x": [x if isinstance(x, str) else format_utc(x) for x in series.xs],
                "y": list(series.ys),
            }
            for series in chart.series
        ],
    }


def report_to_plain(report: Report) -> dict[str, Any]:
    """The report.json document: the contract keys first, additive keys after."""
    env = report.environment
    return {
        "schema": REPORT_SCHEMA,
        "status": report.status.value,
        "generated_at": format_utc(report.generated_at),
        "findings": [_finding_plain(f) for f in report.findings],
        "timeline": [_entry_plain(e) for e in report.timeline],
        "sources": [
            {"name": s.name, "status": s.status, "detail": s.detail, "kind": s.kind}
            for s in report.sources
        ],
        "summary": report.summary,
        "window": {
            "since": _utc_or_none(report.window.since),
            "until": _utc_or_none(report.window.until),
            "first_evidence": _utc_or_none(report.window.first_evidence),
            "last_evidence": _utc_or_none(report.window.last_evidence),
        },
        "key_times": [_key_time_plain(k) for k in report.key_times],
        "timeline_omitted": report.timeline_omitted,
        "unavailable": list(report.unavailable),
        "visibility": list(report.visibility),
        "charts": [_chart_plain(chart) for chart in report.charts],
        "lead": None if report.lead is None else asdict(report.lead),
        "postmortem": None if report.postmortem is None else to_plain(report.postmortem),
        "differential": report.differential,
        "environment": {
            "pooldoctor_version": env.pooldoctor_version,
            "postgres_version": env.postgres_version,
            "postgres_target": env.postgres_target,
            "postgres_user": env.postgres_user,
            "settings": env.settings,
            "pool_config": env.pool_config,
            "pool_instances": list(env.pool_instances),
            "log_files": list(env.log_files),
        },
    }


def render_json(report: Report) -> str:
    """report.json text."""
    plain = clean_tree(report_to_plain(report))
    return json.dumps(plain, indent=2, ensure_ascii=False, default=str) + "\n"


# Inline markdown syntax: escapes, code, emphasis (underscores only at word edges, as
# CommonMark ignores them inside words), links and images, strikethrough.
_MD_INLINE = re.compile(r"[\\`*\[\]~]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
_MD_LINE_START = re.compile(r"(?m)^([ \t]*)([#+=-])")
_MD_LIST_NUMBER = re.compile(r"(?m)^([ \t]*\d+)([.)])")


def md_text(value: Any) -> str:
    """Outside text as inert markdown: HTML and markdown syntax escaped, controls stripped."""
    text = outbound_text("" if value is None else str(value))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_INLINE.sub(lambda match: "\\" + match.group(), text)
    text = _MD_LINE_START.sub(r"\1\\\2", text)
    return _MD_LIST_NUMBER.sub(r"\1\\\2", text)


def md_cell(value: Any) -> str:
    """Text safe inside a markdown table cell: md_text, pipes escaped, line breaks flattened."""
    text = md_text(value).replace("|", "\\|")
    return " ".join(text.splitlines()) or " "


def md_code(value: Any) -> str:
    """An inline code span that survives backticks in its content."""
    text = " ".join(outbound_text(str(value)).splitlines())
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _time_format(report: Report) -> tuple[str, bool]:
    """The date shared by every timeline entry (if any), so rows can show only the clock."""
    days = {as_utc(e.at).date() for e in report.timeline}
    days.add(report.generated_at.date())
    if len(days) == 1:
        return report.generated_at.strftime("%Y-%m-%d"), True
    return "", False


def _finalize(value: Any) -> Any:
    """Every value a template prints: redacted and stripped of control characters (already
    escaped markup, such as a macro's output, stays markup)."""
    if isinstance(value, markupsafe.Markup):
        return markupsafe.Markup(outbound_text(str(value)))
    if isinstance(value, str):
        return outbound_text(value)
    return value


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pooldoctor.report", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_finalize,
    )
    env.filters.update(
        md=md_cell,
        mdtext=md_text,
        code=md_code,
        stamp=stamp,
        clock=clock,
        utc=lambda m: "—" if m is None else format_utc(m),
        pct=percent,
        cell=cell,
    )
    env.globals.update(
        evidence_tables=evidence_tables,
        code_segments=code_segments,
        pretty_json=pretty_json,
    )
    return env


def shown_findings(report: Report) -> list[ReportFinding]:
    """Findings as listed in md/HTML: symptoms folded into their cause are shown inside it."""
    folded = {symptom for f in report.findings for symptom in f.explains}
    return [f for f in report.findings if f.id not in folded]


def chart_files(report: Report) -> dict[str, str]:
    """Each chart's SVG document, keyed by its file name under charts/."""
    return {f"{chart.slug}.svg": chart_svg(chart) for chart in report.charts}


def _context(report: Report, svgs: Mapping[str, str] | None = None) -> dict[str, Any]:
    day, same_day = _time_format(report)
    failed = [s for s in report.sources if s.status != "ok"]
    drawn = chart_files(report) if svgs is None else svgs
    return {
        "r": report,
        "charts_dir": CHARTS_DIR,
        "svgs": {name: inline_svg(svg) for name, svg in drawn.items()},
        "shown_findings": shown_findings(report),
        "by_id": {f.id: f for f in report.findings},
        "day": day,
        "same_day": same_day,
        "failed_sources": failed,
        "renderer_version": __version__,
    }


def render_markdown(report: Report) -> str:
    """report.md: written to be pasted into a postmortem; charts are images from charts/."""
    return strip_controls(_environment().get_template("report.md.j2").render(_context(report, {})))


def render_html(report: Report, svgs: Mapping[str, str] | None = None) -> str:
    """report.html: one self-contained page (inline CSS and SVG, no scripts or assets)."""
    page = _environment().get_template("report.html.j2").render(_context(report, svgs))
    return strip_controls(page)


def write_report_dir(report: Report, evidence_json: str, out: Path) -> list[Path]:
    """Write the report files and charts/*.svg into `out`, each atomically."""
    svgs = {name: strip_controls(svg) for name, svg in chart_files(report).items()}
    texts = (
        render_markdown(report),
        render_html(report, svgs),
        render_json(report),
        evidence_json,
    )
    charts: list[Path] = []
    written: list[Path] = []
    with locked_directory(out):  # concurrent writers take turns: one run's files, never a mix
        for name, svg in svgs.items():
            charts.append(out / CHARTS_DIR / name)
            write_atomic(charts[-1], svg)
        for name, text in zip(REPORT_FILES, texts, strict=True):
            path = out / name
            write_atomic(path, text)
            written.append(path)
    return written + charts
