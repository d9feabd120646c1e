"""`pooldoctor capture`: collect evidence only, write it atomically for later diagnosis."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pooldoctor.collect.options import NO_SOURCES_MESSAGE, RawSourceOptions
from pooldoctor.commands import options as opt
from pooldoctor.commands.progress import (
    QuietOpt,
    VerboseOpt,
    Verbosity,
    sampling_progress,
    verbosity,
)
from pooldoctor.exitcodes import ExitCode
from pooldoctor.interrupts import interrupt_exit_code, interrupt_name
from pooldoctor.sanitize import strip_controls


@opt.with_sources()
def capture_command(
    out: Annotated[
        Path, typer.Option("--out", metavar="FILE", help="Where to write the evidence JSON.")
    ],
    raw_sources: RawSourceOptions,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> int:
    """Collect evidence from the live system and write it to a file (no analysis)."""
    from rich.console import Console
    from rich.text import Text

    from pooldoctor.atomic import write_atomic
    from pooldoctor.collect.session import capture, utc_now
    from pooldoctor.evidence import SourceState, evidence_to_json
    from pooldoctor.interrupts import CaptureInterrupted
    from pooldoctor.report.terminal import plain

    sources = opt.validated(raw_sources, utc_now())
    if not sources.has_sources:
        raise typer.BadParameter(NO_SOURCES_MESSAGE)
    if out.is_dir():
        raise typer.BadParameter(
            f"--out {out} is a directory; give a file name such as {out}/evidence.json"
        )
    level = verbosity(quiet, verbose)
    interrupted: BaseException | None = None
    with sampling_progress(level, sources.samples) as on_round:
        try:
            evidence = capture(sources, on_round=on_round)
        except CaptureInterrupted as stop:
            evidence, interrupted = stop.evidence, stop.cause
    try:
        write_atomic(out, evidence_to_json(evidence))
    except OSError as exc:
        print(f"pooldoctor: error: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return int(ExitCode.CANNOT_WRITE)
    console = Console(stderr=True, highlight=False, quiet=level is Verbosity.QUIET)
    for source in evidence.sources:
        style = "green" if source.status is SourceState.OK else "red"
        line = Text(f"{source.status.value:>7}", style=style)
        line.append(strip_controls(f" {source.kind:<11} {source.name}: {source.detail}"))
        console.print(line)
    console.print(plain(f"evidence written to {out}"))
    if interrupted is not None:
        kept = f"partial evidence kept in {out}"
        print(f"pooldoctor: {interrupt_name(interrupted)}; {kept}", file=sys.stderr)
        return int(interrupt_exit_code(interrupted))
    collected = any(s.status is SourceState.OK for s in evidence.sources)
    return int(ExitCode.OK if collected else ExitCode.UNKNOWN)
