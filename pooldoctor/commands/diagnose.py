"""`pooldoctor diagnose`: collect (or load) evidence, run the checks, write the report."""

from __future__ import annotations

import typer


def diagnose_command() -> int:
    """Diagnose pool exhaustion: collect evidence, rank root causes, write the report."""
    raise typer.Exit(3)
