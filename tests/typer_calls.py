"""What typer itself hands `pooldoctor check` for an argument list (the fast parser's oracle)."""

from __future__ import annotations

import functools

import typer
from typer._click.exceptions import ClickException

from pooldoctor.commands.check import check_command


def typer_arguments(argv: list[str]) -> dict[str, object] | None:
    """The keyword arguments typer calls `check` with, or None when typer refuses the call."""
    seen: dict[str, object] = {}

    @functools.wraps(check_command)
    def record(**arguments: object) -> int:
        seen.update(arguments)
        return 0

    app = typer.Typer()
    app.command()(record)
    try:
        app(args=argv, standalone_mode=False)
    except (ClickException, typer.Exit, typer.Abort):
        return None
    return seen or None
