"""Help text that names what an argument means (its metavar), never the Python type behind it."""

from __future__ import annotations

from typing import Any

from typer._click import Context, Parameter
from typer.core import TyperArgument, TyperCommand


def _plain_argument(argument: TyperArgument) -> None:
    """Show `PATH...` in usage and help rows instead of `{paths}...` and `<list[str]>`."""
    metavar = argument.metavar
    if not metavar:
        return
    usage = metavar + ("..." if argument.nargs != 1 else "")

    def no_type(ctx: Context) -> str | None:
        return None

    def usage_name() -> str:
        return usage if argument.required else f"[{usage}]"

    patched: Any = argument
    patched.display_type_rich = no_type
    patched._usage_display_name = usage_name
    patched._rich_display_name = lambda: usage


class MetavarCommand(TyperCommand):
    """A command whose arguments appear in help under their metavar alone."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        params = super().get_params(ctx)
        for param in params:
            if isinstance(param, TyperArgument):
                _plain_argument(param)
        return params
