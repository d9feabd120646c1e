"""`pooldoctor diagnose`: collect (or load) evidence, run the checks, write the report."""

from __future__ import annotations

import sys
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pooldoctor.collect.extend import MAX_EXTEND_SECONDS
from pooldoctor.collect.options import NO_SOURCES_MESSAGE, RawSourceOptions
from pooldoctor.commands import options as opt
from pooldoctor.commands.progress import (
    QuietOpt,
    VerboseOpt,
    Verbosity,
    print_sources,
    sampling_progress,
    verbosity,
)
from pooldoctor.durations import format_duration
from pooldoctor.exitcodes import STATUS_EXIT, ExitCode
from pooldoctor.interrupts import interrupt_exit_code, interrupt_name

if TYPE_CHECKING:
    from pooldoctor.evidence import Evidence


MAX_EVIDENCE_BYTES = 512 * 1024 * 1024  # 1000 samples of 300 backends is about 200 MiB


class OutputFormat(StrEnum):
    """What `diagnose` prints on standard output."""

    TEXT = "text"
    MD = "md"
    JSON = "json"
    HTML = "html"


def load_evidence_file(path: Path) -> Evidence:
    """Read a captured evidence bundle; any failure is one line on stderr and exit 65."""
    from pooldoctor.collect.inputs import read_input
    from pooldoctor.evidence import EvidenceFormatError, evidence_from_json

    try:
        data = read_input(str(path), MAX_EVIDENCE_BYTES)
        return evidence_from_json(data.decode("utf-8"))
    except (OSError, UnicodeDecodeError, EvidenceFormatError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"pooldoctor: error: cannot read evidence file {path}: {reason}", file=sys.stderr)
        raise typer.Exit(int(ExitCode.INPUT)) from None


@opt.with_sources()
def diagnose_command(
    raw_sources: RawSourceOptions,
    evidence: Annotated[
        Path | None,
        typer.Option(
            "--evidence", metavar="FILE", help="Diagnose a bundle written by `pooldoctor capture`."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Directory for report.md, report.html, report.json and evidence.json.",
        ),
    ] = None,
    output_format: Annotated[
        OutputFormat,
        typer.Option("--format", help="What to print on standard output."),
    ] = OutputFormat.TEXT,
    extend_up_to: Annotated[
        float,
        typer.Option(
            "--extend-up-to",
            metavar="SECONDS",
            min=0.0,
            max=MAX_EXTEND_SECONDS,
            help="When the window cannot decide between two causes, keep sampling live sources "
            f"for the seconds the report asks for, up to this many (at most "
            f"{MAX_EXTEND_SECONDS:g}), then diagnose the whole window. 0 (default): never.",
        ),
    ] = 0.0,
    site_url: Annotated[
        str | None,
        typer.Option(
            "--site-url",
            metavar="URL",
            envvar="POOLDOCTOR_SITE_URL",
            help="Base URL of the runbook site, for links in the report.",
        ),
    ] = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> int:
    """Diagnose pool exhaustion: collect evidence, rank root causes, write the report."""
    from rich.console import Console

    from pooldoctor.collect.extend import extra_samples, join_captures
    from pooldoctor.collect.sampling import utc_now
    from pooldoctor.collect.session import capture
    from pooldoctor.diagnosis import diagnose
    from pooldoctor.evidence import evidence_to_json
    from pooldoctor.interrupts import CaptureInterrupted
    from pooldoctor.report import (
        build_report,
        print_summary,
        render_html,
        render_json,
        render_markdown,
        write_report_dir,
    )
    from pooldoctor.runbooks import load_runbooks

    now = utc_now()
    level = verbosity(quiet, verbose)
    sources = opt.validated(raw_sources, now)
    interrupted: BaseException | None = None
    if evidence is not None:
        given_dsn = raw_sources.dsn  # not the environment's default
        live = (sources.pool_status, given_dsn, sources.logs, sources.configs, sources.pgbouncers)
        if any(live) or sources.prometheus:
            raise typer.BadParameter("--evidence cannot be combined with live source options")
        bundle = load_evidence_file(evidence)
    elif sources.has_sources:
        with sampling_progress(level, sources.samples) as on_round:
            try:
                bundle = capture(sources, on_round=on_round)
            except CaptureInterrupted as stop:
                bundle, interrupted = stop.evidence, stop.cause
        print_sources(level, bundle.sources, sys.stderr)
    else:
        raise typer.BadParameter(NO_SOURCES_MESSAGE)
    diagnosis = diagnose(bundle)
    more_seconds = (diagnosis.differential or {}).get("more_seconds")
    if evidence is None and extend_up_to > 0 and more_seconds:
        extra = min(float(more_seconds), extend_up_to)
        if level is not Verbosity.QUIET:
            print(
                f"pooldoctor: the window cannot decide yet; sampling {format_duration(extra)} more",
                file=sys.stderr,
            )
        more = replace(sources, samples=extra_samples(extra, sources.interval))
        with sampling_progress(level, more.samples) as on_round:
            bundle = join_captures(bundle, capture(more, on_round=on_round))
        diagnosis = diagnose(bundle)
    report = build_report(
        bundle,
        diagnosis,
        generated_at=utc_now(),
        runbook_base_url=site_url,
        runbooks=load_runbooks(),
    )
    written: list[Path] = []
    write_failed = False
    if out is not None:
        try:
            written = write_report_dir(report, evidence_to_json(bundle), out)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            print(f"pooldoctor: error: cannot write the report to {out}: {reason}", file=sys.stderr)
            write_failed = True
    stdout = Console()
    if output_format is OutputFormat.TEXT:
        print_summary(report, stdout, written=written)
    elif output_format is OutputFormat.MD:
        sys.stdout.write(render_markdown(report))
    elif output_format is OutputFormat.JSON:
        sys.stdout.write(render_json(report))
    else:
        sys.stdout.write(render_html(report))
    if write_failed:
        return int(ExitCode.CANNOT_WRITE)
    if interrupted is not None:
        kept = f"; partial report in {out}" if written else ""
        print(f"pooldoctor: {interrupt_name(interrupted)}{kept}", file=sys.stderr)
        return int(interrupt_exit_code(interrupted))
    return int(STATUS_EXIT[diagnosis.status])
