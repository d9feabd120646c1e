"""Typer signatures of the source options shared by every sampling command, and their validation."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

import typer

from pooldoctor.collect.options import BadOption, RawSourceOptions, SourceOptions

PoolStatusOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--pool-status",
        metavar="URL",
        help="URL of an app instance's pool-status endpoint (JSON, SQLAlchemy status(), "
        "psycopg_pool stats or Prometheus text). Repeat once per instance.",
    ),
]
DsnOpt = Annotated[
    str | None,
    typer.Option(
        "--dsn",
        metavar="DSN",
        help="PostgreSQL DSN (libpq URI, key=value, or SQLAlchemy URL). Defaults to "
        "$POOLDOCTOR_DSN, $DATABASE_URL, or libpq's PGHOST/PGDATABASE/PGSERVICE variables. "
        "pooldoctor opens one read-only connection.",
    ),
]
PgBouncerOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--pgbouncer",
        metavar="DSN",
        help="PgBouncer admin console DSN (dbname=pgbouncer; a stats_users login is enough). "
        "Sampled with the other sources. Repeat once per PgBouncer instance.",
    ),
]
PrometheusOpt = Annotated[
    str | None,
    typer.Option(
        "--prometheus",
        metavar="URL",
        help="Prometheus base URL: pool history of every instance over --since/--until "
        "(default: the last 30 minutes), by range queries.",
    ),
]
LogOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--log",
        metavar="FILE",
        help="Application or PostgreSQL log file (plain or .gz), or - for stdin. Repeats.",
    ),
]
ConfigOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--config", metavar="FILE", help="KEY=VALUE env file with the app's pool settings. Repeats."
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        metavar="N",
        min=1,
        max=100_000,
        help="App processes per host (overrides WEB_CONCURRENCY).",
    ),
]
SamplesOpt = Annotated[
    int, typer.Option("--samples", metavar="N", min=1, max=1000, help="Live samples per source.")
]
IntervalOpt = Annotated[
    float,
    typer.Option(
        "--interval", metavar="SECONDS", min=0.0, max=3600.0, help="Seconds between samples."
    ),
]
TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        min=0.1,
        max=300.0,
        help="Per-call timeout for every source, seconds.",
    ),
]
SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="TIME",
        help="Only log lines at or after TIME (ISO 8601, or 30m/2h/1d ago).",
    ),
]
UntilOpt = Annotated[
    str | None,
    typer.Option(
        "--until", metavar="TIME", help="Only log lines before TIME (ISO 8601, or 30m/2h/1d ago)."
    ),
]
LogTzOpt = Annotated[
    str | None,
    typer.Option(
        "--log-tz",
        metavar="TZ",
        help="Time zone of log timestamps that carry none (default: local).",
    ),
]


def validated(raw: RawSourceOptions, now: datetime) -> SourceOptions:
    """The collect layer's validation, its errors turned into typer's usage errors."""
    try:
        return raw.validate(now)
    except BadOption as exc:
        raise typer.BadParameter(str(exc)) from None


SOURCE_PARAMETERS = {
    "pool_status": "pool_status",
    "dsn": "dsn",
    "log": "logs",
    "config": "configs",
    "workers": "workers",
    "samples": "samples",
    "interval": "interval",
    "timeout": "timeout",
    "since": "since",
    "until": "until",
    "log_tz": "log_tz",
    "pgbouncer": "pgbouncers",
    "prometheus": "prometheus",
}
"""Each command's source parameter name -> its RawSourceOptions field."""

PARAMETER_DEFAULTS: dict[str, Any] = {"workers": None, "samples": 1}
"""What a command without that option (check has no --workers, watch no --samples) means."""


def sources_from(parameters: Mapping[str, Any], now: datetime) -> SourceOptions:
    """The source options a command was given (its parameters by name), validated."""
    fields = {
        field: parameters.get(name, PARAMETER_DEFAULTS.get(name))
        for name, field in SOURCE_PARAMETERS.items()
    }
    return validated(RawSourceOptions(**fields), now)
