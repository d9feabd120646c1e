"""Generated parts of the documentation site: navigation, references and runbook page headers."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer

from pooldoctor.alerts import alert_rules
from pooldoctor.checks.registry import CHECKS
from pooldoctor.cli import app, main
from pooldoctor.diagnosis import diagnose
from pooldoctor.evidence import evidence_from_json
from pooldoctor.exitcodes import EXIT_CODE_MEANINGS
from pooldoctor.report import build_report, render_json
from pooldoctor.runbooks import Runbook, section_item_blocks

MARKER = re.compile(r"<!--\s*pooldoctor:([a-z-]+)\s*-->")
EXAMPLE_EVIDENCE = Path("docs/examples/evidence.json")
HELP_WIDTH = "100"

NavItem = str | dict[str, Any]
# Runbook pages carry the exact error strings people paste into search: rank them above
# guide pages that merely mention a word of the error (mkdocs-material document boost).
RUNBOOK_SEARCH_BOOST = 1000


def navigation(runbooks: Mapping[str, Runbook]) -> list[NavItem]:
    """The site navigation: guides, references, then every runbook by title."""
    runbook_entries: list[NavItem] = [
        {rb.title: f"runbooks/{slug}.md"} for slug, rb in sorted(runbooks.items())
    ]
    return [
        {"Home": "index.md"},
        {"On-call guide": "on-call.md"},
        {"Monitoring plugin": "monitoring.md"},
        {"Runbooks": ["runbooks.md", *runbook_entries]},
        {
            "Reference": [
                {"CLI": "reference/cli.md"},
                {"Report format": "reference/report-format.md"},
                {"Checks": "reference/checks.md"},
                {"Alerts": "reference/alerts.md"},
                {"Architecture": "reference/architecture.md"},
                {"App-side helpers": "app-side.md"},
                {"Source: PgBouncer": "pgbouncer.md"},
                {"Source: Prometheus history": "prometheus.md"},
                {"Leak scanner": "scan.md"},
                {"Writing runbooks": "contributing.md"},
            ]
        },
        {"Tags": "tags.md"},
    ]


def index_symptoms_as_search_tags(index_json: str, runbooks: Mapping[str, Runbook]) -> str:
    """The site's search index with each runbook page's exact error strings as its search tags.

    mkdocs-material weighs a tag match a thousand times a heading match, so a pasted error
    ("QueuePool limit of size 3 overflow 0 reached") ranks the runbooks that list it first,
    above a guide heading that shares one word with it ("Known limits").
    """
    index = json.loads(index_json)
    for doc in index["docs"]:
        match = re.fullmatch(r"runbooks/([a-z0-9-]+)/(?:index\.html)?", doc["location"])
        runbook = runbooks.get(match.group(1)) if match else None
        if runbook is not None:
            doc["tags"] = [*doc.get("tags", []), *runbook.symptoms]
    return json.dumps(index, ensure_ascii=False, separators=(",", ":"))


def stop_the_bleeding(runbook: Runbook) -> str:
    """The box under the symptoms: the runbook's first Mitigation step and where the rest is."""
    steps = section_item_blocks(runbook.body, "Mitigation")
    if not steps:
        return ""
    box = "\n".join(f"    {line}".rstrip() for line in steps[0])
    return (
        f'!!! tip "Stop the bleeding"\n\n{box}\n\n'
        "    Then work down [Mitigation](#mitigation), least disruptive first.\n\n"
    )


def runbook_page(runbook: Runbook, body: str) -> str:
    """A runbook's page: description, symptoms, the first step to take, alerts, then the runbook."""
    symptoms = "\n".join(f"    - `{symptom}`" for symptom in runbook.symptoms)
    alerts = ", ".join(f"`{name}`" for name in runbook.alerts) or "none"
    return (
        f"{runbook.description}\n\n"
        f'!!! danger "Symptoms: exact error strings"\n\n{symptoms}\n\n'
        f"{stop_the_bleeding(runbook)}"
        f"**Severity:** {runbook.severity} · **Alerts that link here:** {alerts}\n\n"
        f"{body}"
    )


def symptoms_index(runbooks: Mapping[str, Runbook], prefix: str = "runbooks/") -> str:
    """Every exact error string from the runbooks' front matter and the runbooks it leads to."""
    leads: dict[str, list[str]] = {}
    for slug, runbook in sorted(runbooks.items()):
        for symptom in runbook.symptoms:
            leads.setdefault(symptom, []).append(slug)
    rows = [
        "| `"
        + symptom.replace("|", "\\|")
        + "` | "
        + ", ".join(f"[{runbooks[slug].title}]({prefix}{slug}.md)" for slug in slugs)
        + " |"
        for symptom, slugs in sorted(leads.items(), key=lambda item: item[0].lower())
    ]
    return "| You see this error | Open this runbook |\n|---|---|\n" + "\n".join(rows) + "\n"


def cli_reference() -> str:
    """Every command's --help, as the installed CLI prints it."""
    root = typer.main.get_command(app)
    paths: list[list[str]] = [[]]
    for name, command in sorted(getattr(root, "commands", {}).items()):
        paths.append([name])
        for sub in sorted(getattr(command, "commands", {})):
            paths.append([name, sub])
    sections = []
    for path in paths:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer), _columns(HELP_WIDTH):
            main([*path, "--help"])
        title = " ".join(["pooldoctor", *path])
        sections.append(f"## `{title}`\n\n```text\n{buffer.getvalue().rstrip()}\n```\n")
    return "\n".join(sections)


@contextlib.contextmanager
def _columns(width: str) -> Any:
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = width
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous


def exit_codes() -> str:
    """The exit-code table from pooldoctor.exitcodes."""
    rows = [
        f"| {int(code)} | `{code.name}` | {meaning} |"
        for code, meaning in EXIT_CODE_MEANINGS.items()
    ]
    return "| Code | Name | Meaning |\n|---|---|---|\n" + "\n".join(rows) + "\n"


def checks_index() -> str:
    """Every check in the registry with the runbooks it maps to."""
    rows = [
        f"| `{spec.name}` | {spec.summary} | "
        + ", ".join(f"[{slug}](../runbooks/{slug}.md)" for slug in spec.runbooks)
        + " |"
        for spec in CHECKS
    ]
    return "| Check | What it looks for | Runbooks |\n|---|---|---|\n" + "\n".join(rows) + "\n"


def alerts_index(runbooks: Mapping[str, Runbook]) -> str:
    """Alert name to runbook: the shipped rule's target and every runbook that lists the alert."""
    linked: dict[str, list[str]] = {}
    for slug, runbook in sorted(runbooks.items()):
        for alert in runbook.alerts:
            linked.setdefault(alert, []).append(slug)
    shipped = {rule.name: rule for rule in alert_rules()}
    lines = ["| Alert | Shipped rule's runbook_url | Runbooks that list it |", "|---|---|---|"]
    for name in sorted(set(linked) | set(shipped)):
        rule = shipped.get(name)
        target = f"[{rule.runbook}](../runbooks/{rule.runbook}.md)" if rule else "not shipped"
        listed = ", ".join(f"[{slug}](../runbooks/{slug}.md)" for slug in linked.get(name, []))
        lines.append(f"| `{name}` | {target} | {listed or '—'} |")
    return "\n".join(lines) + "\n"


def runbooks_index(runbooks: Mapping[str, Runbook]) -> str:
    """A table of every runbook with its severity and one-line description."""
    rows = [
        f"| [{rb.title}](runbooks/{slug}.md) | {rb.severity} | {rb.description} |"
        for slug, rb in sorted(runbooks.items())
    ]
    return "| Runbook | Severity | When |\n|---|---|---|\n" + "\n".join(rows) + "\n"


def report_example(repo_root: Path) -> str:
    """report.json produced by the real pipeline from the example evidence bundle."""
    evidence = evidence_from_json((repo_root / EXAMPLE_EVIDENCE).read_text(encoding="utf-8"))
    report = build_report(evidence, diagnose(evidence), generated_at=evidence.collected_at)
    return f"```json\n{render_json(report).rstrip()}\n```\n"


def expand_markers(markdown: str, runbooks: Mapping[str, Runbook], repo_root: Path) -> str:
    """Replace every `<!-- pooldoctor:NAME -->` marker with its generated content."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "cli-reference":
            return cli_reference()
        if name == "exit-codes":
            return exit_codes()
        if name == "checks-index":
            return checks_index()
        if name == "alerts-index":
            return alerts_index(runbooks)
        if name == "runbooks-index":
            return runbooks_index(runbooks)
        if name == "symptoms-index":
            return symptoms_index(runbooks)
        if name == "report-example":
            return report_example(repo_root)
        raise ValueError(f"unknown docs marker {name!r}")

    return MARKER.sub(replace, markdown)
