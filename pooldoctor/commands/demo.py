"""`pooldoctor demo`: the built-in end-to-end example."""

import typer


def demo_command() -> int:
    """Run the built-in end-to-end example against a throwaway PostgreSQL."""
    raise typer.Exit(3)
