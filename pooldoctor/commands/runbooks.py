"""`pooldoctor runbooks list | show SLUG`."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from pooldoctor.commands.helpfmt import MetavarCommand
from pooldoctor.exitcodes import ExitCode

if TYPE_CHECKING:
    from rich.console import RenderableType

    from pooldoctor.runbooks import Runbook

runbooks_app = typer.Typer(
    help="List and show the on-call runbooks.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

SEVERITY_STYLES = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def _fail(message: str) -> typer.Exit:
    print(f"pooldoctor: error: {message}", file=sys.stderr)
    return typer.Exit(int(ExitCode.INPUT))


@runbooks_app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> int:
    """List the runbooks: slug, severity, title."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from pooldoctor.runbooks import RUNBOOK_SLUGS, RunbookError, load_runbooks

    try:
        loaded = load_runbooks()
    except RunbookError as exc:
        raise _fail(str(exc)) from None
    ordered = [loaded[slug] for slug in RUNBOOK_SLUGS if slug in loaded]
    if as_json:
        print(json.dumps([_summary(rb) for rb in ordered], indent=2))
        return 0
    table = Table(title="pooldoctor runbooks", title_justify="left")
    table.add_column("slug", no_wrap=True)
    table.add_column("severity", no_wrap=True)
    table.add_column("title")
    for rb in ordered:
        table.add_row(
            rb.slug, Text(rb.severity, style=SEVERITY_STYLES.get(rb.severity, "")), rb.title
        )
    Console().print(table)
    return 0


@runbooks_app.command("show", cls=MetavarCommand)
def show_command(
    slug: Annotated[
        str, typer.Argument(metavar="SLUG", help="Runbook slug, e.g. connection-leak.")
    ],
    raw: Annotated[bool, typer.Option("--raw", help="Print the markdown file as-is.")] = False,
) -> int:
    """Show one runbook in the terminal."""
    from rich.console import Console
    from rich.markdown import Markdown

    from pooldoctor.runbooks import RunbookError, UnknownRunbook, get_runbook, runbook_path

    try:
        runbook = get_runbook(slug)
        text = runbook_path(slug).read_text(encoding="utf-8") if raw else ""
    except UnknownRunbook as exc:
        raise typer.BadParameter(str(exc), param_hint="'SLUG'") from None
    except (RunbookError, OSError) as exc:
        raise _fail(str(exc)) from None
    if raw:
        sys.stdout.write(text)
        return 0
    console = Console()
    console.print(_header(runbook))
    console.print(Markdown(runbook.body))
    return 0


def _summary(rb: Runbook) -> dict[str, object]:
    return {
        "slug": rb.slug,
        "title": rb.title,
        "severity": rb.severity,
        "description": rb.description,
        "tags": list(rb.tags),
        "alerts": list(rb.alerts),
        "symptoms": list(rb.symptoms),
        "related": list(rb.related),
    }


def _header(rb: Runbook) -> RenderableType:
    from rich.console import Group
    from rich.panel import Panel
    from rich.rule import Rule
    from rich.text import Text

    style = SEVERITY_STYLES.get(rb.severity, "")
    lines: list[RenderableType] = [
        Text.assemble((rb.title, "bold"), "  ", (rb.severity.upper(), style)),
        Text(rb.description, style="italic"),
    ]
    if rb.symptoms:
        lines.append(Rule("symptoms (grep for)", align="left", style="dim"))
        lines.extend(Text(f"  {symptom}") for symptom in rb.symptoms)
    if rb.alerts:
        lines.append(Text.assemble(("alerts: ", "bold"), ", ".join(rb.alerts)))
    return Panel(Group(*lines), title=rb.slug, title_align="left", border_style=style or "none")
