"""Source options shared by `diagnose` and `capture`, and their validation."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

PoolStatusOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--pool-status",
        help="URL of an app instance's pool-status endpoint (JSON, SQLAlchemy status(), "
        "psycopg_pool stats or Prometheus text). Repeat once per instance.",
    ),
]
DsnOpt = Annotated[
    str | None,
    typer.Option(
        "--dsn",
        help="PostgreSQL DSN (libpq URI, key=value, or SQLAlchemy URL). Defaults to "
        "$POOLDOCTOR_DSN, $DATABASE_URL, or libpq's PGHOST/PGDATABASE/PGSERVICE variables. "
        "pooldoctor opens one read-only connection.",
    ),
]
LogOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--log", help="Application or PostgreSQL log file (plain or .gz), or - for stdin. Repeats."
    ),
]
ConfigOpt = Annotated[
    list[str] | None,
    typer.Option("--config", help="KEY=VALUE env file with the app's pool settings. Repeats."),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers", min=1, max=100_000, help="App processes per host (overrides WEB_CONCURRENCY)."
    ),
]
SamplesOpt = Annotated[
    int, typer.Option("--samples", min=1, max=1000, help="Live samples per source.")
]
IntervalOpt = Annotated[
    float, typer.Option("--interval", min=0.0, max=3600.0, help="Seconds between samples.")
]
TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout", min=0.1, max=300.0, help="Per-call timeout for every source, seconds."
    ),
]
SinceOpt = Annotated[
    str | None,
    typer.Option("--since", help="Only log lines at or after TIME (ISO 8601, or 30m/2h/1d ago)."),
]
UntilOpt = Annotated[
    str | None,
    typer.Option("--until", help="Only log lines before TIME (ISO 8601, or 30m/2h/1d ago)."),
]
LogTzOpt = Annotated[
    str | None,
    typer.Option("--log-tz", help="Time zone of log timestamps that carry none (default: local)."),
]


@dataclass(frozen=True)
class SourceOptions:
    """Validated source options: what to collect and how patiently."""

    pool_status: tuple[str, ...] = ()
    dsn: str | None = None
    logs: tuple[str, ...] = ()
    configs: tuple[str, ...] = ()
    workers: int | None = None
    samples: int = 3
    interval: float = 2.0
    timeout: float = 5.0
    since: datetime | None = None
    until: datetime | None = None
    log_tz: tzinfo | None = None

    @property
    def has_sources(self) -> bool:
        return bool(self.pool_status or self.dsn or self.logs or self.configs)


_RELATIVE = re.compile(r"^(\d{1,12}(?:\.\d{1,9})?)\s*([smhd])$")
MAX_AGE_DAYS = 100 * 366  # older than any log anyone keeps; beyond it the arithmetic overflows
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time_arg(text: str, now: datetime, default_tz: tzinfo) -> datetime:
    """Parse --since/--until: ISO 8601 (naive means default_tz) or a relative age like 2h."""
    match = _RELATIVE.match(text.strip())
    if match:
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        if seconds > MAX_AGE_DAYS * 86400:
            raise typer.BadParameter(f"{text!r} is too far back (at most {MAX_AGE_DAYS}d)")
        return now - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=default_tz)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise typer.BadParameter(
            f"{text!r} is not a time: use ISO 8601 (2026-11-21T09:30:00Z) or an age (30m, 2h, 1d)"
        ) from None


def resolve_log_tz(name: str | None) -> tzinfo:
    """The zone for naive log timestamps: --log-tz, else the machine's local zone."""
    if name is None:
        local = datetime.now().astimezone().tzinfo
        return local if local is not None else UTC
    if name.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise typer.BadParameter(f"unknown time zone {name!r} (try UTC or Europe/Berlin)") from None


LIBPQ_ENVIRONMENT = ("PGSERVICE", "PGHOST", "PGDATABASE")
EMPTY_URI = "postgresql://"  # libpq fills every part from PG* variables


def default_dsn() -> str | None:
    """The DSN from the environment when --dsn is not given: a URL variable, else libpq's PG*."""
    for variable in ("POOLDOCTOR_DSN", "DATABASE_URL"):
        value = os.environ.get(variable)
        if value:
            return value
    if any(os.environ.get(variable) for variable in LIBPQ_ENVIRONMENT):
        return EMPTY_URI
    return None


def build_source_options(
    *,
    pool_status: list[str] | None,
    dsn: str | None,
    logs: list[str] | None,
    configs: list[str] | None,
    workers: int | None,
    samples: int,
    interval: float,
    timeout: float,
    since: str | None,
    until: str | None,
    log_tz: str | None,
    now: datetime,
) -> SourceOptions:
    """Validate raw CLI values into SourceOptions (raises typer.BadParameter on bad input)."""
    zone = resolve_log_tz(log_tz)
    since_at = parse_time_arg(since, now, zone) if since else None
    until_at = parse_time_arg(until, now, zone) if until else None
    if since_at and until_at and since_at >= until_at:
        raise typer.BadParameter("--since must be earlier than --until")
    return SourceOptions(
        pool_status=tuple(pool_status or ()),
        dsn=dsn or default_dsn(),
        logs=tuple(logs or ()),
        configs=tuple(configs or ()),
        workers=workers,
        samples=samples,
        interval=interval,
        timeout=timeout,
        since=since_at,
        until=until_at,
        log_tz=zone,
    )


NO_SOURCES_MESSAGE = (
    "no sources given: pass at least one of --pool-status URL, --dsn DSN (or set DATABASE_URL), "
    "--log PATH or --config PATH (or --evidence FILE to diagnose a capture)"
)
