"""`pooldoctor scan PATH...`: static scan for leak-prone session and connection handling."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pooldoctor.exitcodes import ExitCode
from pooldoctor.scan.formats import ScanFormat

FormatOpt = Annotated[
    ScanFormat,
    typer.Option("--format", case_sensitive=False, help="Output: text, json or sarif (2.1.0)."),
]


PathsArg = Annotated[list[str], typer.Argument(metavar="PATH", help="Files or folders to scan.")]


def scan_command(
    paths: PathsArg,
    output_format: FormatOpt = ScanFormat.TEXT,
) -> int:
    """Scan Python code for leak-prone database session handling.

    Exit 1 when something is found, 0 when clean, 64 on bad input.
    """
    from pooldoctor.scan.output import render
    from pooldoctor.scan.scanner import ScanInputError, scan

    try:
        result = scan([Path(path) for path in paths])
    except ScanInputError as exc:
        print(f"pooldoctor: error: {exc}", file=sys.stderr)
        return int(ExitCode.USAGE)
    sys.stdout.write(render(result, output_format))
    return int(ExitCode.WARNING) if result.findings else int(ExitCode.OK)
