"""The incident report: model, timeline, and its markdown, HTML, JSON and terminal renderings."""

from pooldoctor.report.build import build_report
from pooldoctor.report.model import REPORT_SCHEMA, Report
from pooldoctor.report.render import (
    render_html,
    render_json,
    render_markdown,
    write_report_dir,
)
from pooldoctor.report.terminal import print_summary

__all__ = [
    "REPORT_SCHEMA",
    "Report",
    "build_report",
    "print_summary",
    "render_html",
    "render_json",
    "render_markdown",
    "write_report_dir",
]
