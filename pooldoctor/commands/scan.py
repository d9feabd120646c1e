"""`pooldoctor scan PATH...`: static scan for leak-prone session and connection handling."""

import typer


def scan_command(paths: list[str] = typer.Argument(..., help="Files or folders to scan.")) -> int:
    """Scan Python code for leak-prone database session handling."""
    raise typer.Exit(3)
