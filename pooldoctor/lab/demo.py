"""The built-in end-to-end example: a real leaking app, diagnosed by the real pipeline."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from pooldoctor.diagnosis import diagnose
from pooldoctor.evidence import Evidence, evidence_to_json
from pooldoctor.findings import Diagnosis
from pooldoctor.lab.scenarios import connection_leak
from pooldoctor.report import build_report, print_summary, write_report_dir
from pooldoctor.runbooks import Runbook, RunbookError, load_runbooks

DEFAULT_OUT = Path("pooldoctor-demo")  # the same default as `pooldoctor demo --out`
LAB_DIR_NAME = "lab"  # the app log, env file and server log the capture read


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced: the report files and the diagnosis behind them."""

    out: Path
    written: tuple[Path, ...]
    evidence: Evidence
    diagnosis: Diagnosis


def _runbooks() -> dict[str, Runbook]:
    try:
        return load_runbooks()
    except (RunbookError, OSError):
        return {}


def point_at_kept_copies(evidence: Evidence, kept: Path) -> Evidence:
    """Name the copies kept in `kept` instead of log files that lived in a removed temp folder."""

    def kept_copy(path: str) -> str:
        copy = kept / Path(path).name
        return str(copy) if not Path(path).exists() and copy.is_file() else path

    return replace(
        evidence,
        logs=tuple(replace(log, path=kept_copy(log.path)) for log in evidence.logs),
        sources=tuple(
            replace(s, name=kept_copy(s.name)) if s.kind == "log" else s for s in evidence.sources
        ),
    )


def run_demo(out: Path = DEFAULT_OUT, console: Console | None = None) -> DemoResult:
    """Reproduce the seed incident (a leaking /orders endpoint), diagnose it, write the report.

    Raises PostgresUnavailable when the PostgreSQL server binaries are missing.
    """
    console = console or Console(stderr=True)

    def progress(message: str) -> None:
        console.print(f"[bold cyan]demo[/] {message}", highlight=False)

    out.mkdir(parents=True, exist_ok=True)
    run = connection_leak(out / LAB_DIR_NAME, progress=progress)
    progress("cluster and app stopped; diagnosing the captured evidence")
    evidence = point_at_kept_copies(run.evidence, out / LAB_DIR_NAME)
    diagnosis = diagnose(evidence)
    report = build_report(
        evidence,
        diagnosis,
        generated_at=datetime.now(UTC),
        runbooks=_runbooks(),
    )
    written = write_report_dir(report, evidence_to_json(evidence), out)
    console.print()
    print_summary(report, console, written=written)
    console.print()
    progress(f"report written to {out}/: open {out / 'report.html'}")
    progress(f"the app log, env file and server log it read are kept in {out / LAB_DIR_NAME}/")
    return DemoResult(out, tuple(written), evidence, diagnosis)
