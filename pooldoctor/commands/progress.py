"""Progress on stderr while sampling: a rich bar on a terminal, else one plain line a round."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import IntEnum
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

if TYPE_CHECKING:
    from pooldoctor.collect.sampling import RoundReport
    from pooldoctor.evidence import SourceStatus

QuietOpt = Annotated[
    bool, typer.Option("-q", "--quiet", help="Print no progress on stderr, only errors.")
]
VerboseOpt = Annotated[
    bool,
    typer.Option(
        "-v", "--verbose", help="Also print each source's outcome and why it failed, on stderr."
    ),
]


class Verbosity(IntEnum):
    """How much `diagnose` and `capture` say on stderr while they work."""

    QUIET = 0
    NORMAL = 1
    VERBOSE = 2


def verbosity(quiet: bool, verbose: bool) -> Verbosity:
    """--quiet wins over --verbose: a script asking for silence gets it."""
    if quiet:
        return Verbosity.QUIET
    return Verbosity.VERBOSE if verbose else Verbosity.NORMAL


@contextmanager
def sampling_progress(
    level: Verbosity, total: int, stream: TextIO | None = None
) -> Iterator[Callable[[RoundReport], None] | None]:
    """A callback for `capture(on_round=...)`, or None when quiet."""
    out = sys.stderr if stream is None else stream
    if level is Verbosity.QUIET:
        yield None
        return
    if not out.isatty():

        def plain(report: RoundReport) -> None:
            print(report.line(), file=out, flush=True)

        yield plain
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    console = Console(file=out, stderr=out is sys.stderr)
    columns = (
        TextColumn("sampling"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}", markup=False),  # outcomes quote peers' errors
    )
    with Progress(*columns, console=console, transient=level is not Verbosity.VERBOSE) as bar:
        task = bar.add_task("", total=total)

        def rich_round(report: RoundReport) -> None:
            outcomes = ", ".join(f"{name} {outcome}" for name, outcome in report.outcomes)
            bar.update(task, completed=report.number, description=outcomes)
            failed = any(outcome.startswith("error") for _, outcome in report.outcomes)
            if level is Verbosity.VERBOSE or failed:
                bar.console.print(report.line(), highlight=False, markup=False)

        yield rich_round


def print_sources(level: Verbosity, statuses: Sequence[SourceStatus], stream: TextIO) -> None:
    """With --verbose, one line per source: its outcome and detail."""
    if level is not Verbosity.VERBOSE:
        return
    for status in statuses:
        print(
            f"source {status.kind} {status.name}: {status.status.value}, {status.detail}",
            file=stream,
        )
