"""`pooldoctor watch`: a live view refreshed every --interval, optionally recorded as evidence."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pooldoctor.atomic import writable_problem
from pooldoctor.collect.options import RawSourceOptions
from pooldoctor.commands import options as opt
from pooldoctor.exitcodes import STATUS_EXIT, ExitCode

ROUND_INTERVAL = Annotated[
    float,
    typer.Option(
        "--interval", metavar="SECONDS", min=0.2, max=3600.0, help="Seconds between rounds."
    ),
]


@opt.with_sources(fixed={"samples": 1}, options={"interval": ROUND_INTERVAL})
def watch_command(
    raw_sources: RawSourceOptions,
    record: Annotated[
        Path | None,
        typer.Option(
            "--record",
            metavar="FILE",
            help="Write everything sampled as evidence (atomically, also on Ctrl-C) for "
            "`diagnose --evidence`.",
        ),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(
            "--duration", metavar="SECONDS", min=0.0, help="Stop by itself after this many seconds."
        ),
    ] = None,
) -> int:
    """Live view of pools, server backends, stuck sessions and the leading cause.

    Keys: s sort, p pause, q quit. It never terminates anything; it shows the command to copy.
    Without a terminal it prints one status line per round.
    """
    from rich.console import Console

    from pooldoctor.collect.sampling import utc_now
    from pooldoctor.watch.live import WatchSettings, run_watch

    sources = opt.validated(raw_sources, utc_now())
    if not (sources.pool_status or sources.dsn or sources.pgbouncers):
        raise typer.BadParameter(
            "nothing live to watch: pass --pool-status URL, --dsn DSN (or set DATABASE_URL) "
            "or --pgbouncer DSN"
        )
    if record is not None and record.is_dir():
        raise typer.BadParameter(
            f"--record {record} is a directory; give a file name such as {record}/evidence.json"
        )
    problem = None if record is None else writable_problem(record)
    if problem is not None:
        raise typer.BadParameter(f"--record {record} cannot be written: {problem}")
    outcome = run_watch(sources, WatchSettings(sources.interval, duration, record), Console())
    if outcome.record_error is not None:
        print(f"pooldoctor: error: {outcome.record_error}", file=sys.stderr)
        return int(ExitCode.INPUT)
    if outcome.record is not None:
        print(
            f"watched {outcome.rounds} round(s); evidence recorded to {outcome.record} "
            f"(replay: pooldoctor diagnose --evidence {outcome.record})",
            file=sys.stderr,
        )
    return int(STATUS_EXIT[outcome.status])
