"""The default `--format text` output: the verdict, what to do first, and where the report went."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from pooldoctor.report.model import Report
from pooldoctor.report.present import code_segments, is_command
from pooldoctor.report.render import CHARTS_DIR
from pooldoctor.report.textfmt import percent
from pooldoctor.sanitize import strip_controls

# Remediation steps printed for the top finding; the rest are in the report files.
TERMINAL_REMEDIATION_STEPS = 3
STATUS_STYLES = {"ok": "bold green", "warning": "bold yellow", "critical": "bold red"}
SEVERITY_STYLES = {"critical": "red", "warning": "yellow", "info": "cyan"}


def plain(text: str, style: str = "") -> Text:
    """Outside text for the terminal: never read as rich markup, control characters removed."""
    return Text(strip_controls(text), style=style)


def _step_text(index: int, step: str) -> Text:
    text = Text(f"{index}. ")
    for segment, is_code in code_segments(step):
        text.append(strip_controls(segment), style="bold cyan" if is_code else "")
    return text


def paste_commands(steps: Sequence[str]) -> list[str]:
    """The code spans of the remediation steps, each once, in order (SQL, shell lines)."""
    commands: list[str] = []
    for step in steps:
        for segment, is_code in code_segments(step):
            command = segment.strip()
            if is_code and is_command(command) and command not in commands:
                commands.append(command)
    return commands


def print_summary(report: Report, console: Console, *, written: Sequence[Path] = ()) -> None:
    """Status, top finding with first remediation steps, other findings, failed sources, files."""
    status = report.status.value
    style = STATUS_STYLES.get(status, "bold")
    heading = Text.assemble(("pooldoctor: ", "bold"), (status.upper(), style))
    console.print(heading)
    if report.findings:
        top = report.findings[0]
        body: list[Text] = [
            Text.assemble(
                (top.severity.value.upper(), SEVERITY_STYLES.get(top.severity.value, "")),
                f"  confidence {percent(top.confidence)}",
            ),
        ]
        if report.lead is not None:
            for name, value in (
                ("Where", report.lead.where),
                ("Impact", report.lead.impact),
            ):
                body.append(Text.assemble((f"{name}: ", "bold"), strip_controls(value)))
        else:
            body.append(plain(top.summary))
        steps = top.remediation[:TERMINAL_REMEDIATION_STEPS]
        if steps:
            body.append(Text("Do now:", style="bold"))
            body.extend(_step_text(i, step) for i, step in enumerate(steps, start=1))
        body.append(plain(f"Runbook: {top.runbook_url or top.runbook_command}"))
        console.print(
            Panel(Group(*body), title=plain(top.title), title_align="left", border_style=style)
        )
        commands = paste_commands(steps)
        if commands:
            console.print(Text("Commands (one per line, ready to paste):", style="bold"))
            for command in commands:
                console.print(plain(command), soft_wrap=True, highlight=False)
    else:
        console.print(plain(report.summary))
    folded = {symptom for finding in report.findings for symptom in finding.explains}
    others = [f for f in report.findings[1:] if f.id not in folded]
    if others:
        table = Table(title="Other findings", title_justify="left", show_edge=False)
        table.add_column("Severity")
        table.add_column("Finding")
        table.add_column("Conf.", justify="right")
        table.add_column("Runbook")
        for finding in others:
            severity = finding.severity.value
            table.add_row(
                Text(severity, style=SEVERITY_STYLES.get(severity, "")),
                plain(finding.title),
                percent(finding.confidence),
                plain(finding.runbook),
            )
        console.print(table)
    if report.visibility:
        console.print(Text("Visibility:", style="bold"))
        for line in report.visibility:
            console.print(Text(f"  {line}"))
    failed = [s for s in report.sources if s.status != "ok"]
    if failed:
        console.print(Text("Sources not collected:", style="bold"))
        for source in failed:
            console.print(
                plain(f"  {source.status:<7} {source.kind} {source.name}: {source.detail}")
            )
    charts = [path for path in written if path.parent.name == CHARTS_DIR]
    for path in written:
        if path not in charts:
            console.print(plain(f"wrote {path}"))
    if charts:
        console.print(plain(f"wrote {len(charts)} charts to {charts[0].parent}/"))
