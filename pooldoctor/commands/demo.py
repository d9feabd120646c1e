"""`pooldoctor demo`: the built-in end-to-end example."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pooldoctor.exitcodes import ExitCode

DEFAULT_OUT = Path("pooldoctor-demo")


def demo_command(
    out: Annotated[
        Path,
        typer.Option(
            "--out", metavar="DIR", help="Directory for the demo's report and captured inputs."
        ),
    ] = DEFAULT_OUT,
) -> int:
    """Reproduce a real connection leak against a throwaway PostgreSQL and diagnose it."""
    # Imported here: the demo's lab (SQLAlchemy, a web app) is most of the CLI's start-up cost,
    # and every other command, run during an incident, does not need it.
    from pooldoctor.lab.cluster import PostgresUnavailable
    from pooldoctor.lab.demo import run_demo

    try:
        run_demo(out)
    except PostgresUnavailable as exc:
        print(f"pooldoctor: error: {exc}", file=sys.stderr)
        return int(ExitCode.UNKNOWN)
    return int(ExitCode.OK)
