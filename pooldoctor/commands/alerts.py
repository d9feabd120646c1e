"""`pooldoctor alerts`: print the Prometheus alerting rules, linked to the runbook site."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pooldoctor.alerts import DEFAULT_SITE_URL
from pooldoctor.atomic import write_atomic


def alerts_command(
    site_url: Annotated[
        str,
        typer.Option(
            "--site-url",
            metavar="URL",
            envvar="POOLDOCTOR_SITE_URL",
            help="Base URL of the runbook site; each rule's runbook_url points under it.",
        ),
    ] = DEFAULT_SITE_URL,
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="FILE", help="Write the rules file here instead of stdout."),
    ] = None,
) -> int:
    """Print Prometheus alerting rules for pool gauges and PostgreSQL saturation."""
    from pooldoctor.alerts import render_rules

    if not site_url.startswith(("http://", "https://")):
        raise typer.BadParameter(f"--site-url must be an http(s) URL, got {site_url!r}")
    text = render_rules(site_url)
    if out is None:
        sys.stdout.write(text)
    else:
        write_atomic(out, text)
    return 0
