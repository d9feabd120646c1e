"""What to collect and how patiently: SourceOptions, validated from raw option values."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pooldoctor.durations import BadDuration, parse_duration
from pooldoctor.redact import redact_url

MAX_AGE_DAYS = 100 * 366  # older than any log anyone keeps; beyond it the arithmetic overflows


class BadOption(ValueError):
    """A source option that cannot be used; the message is one line for the user."""


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
    pgbouncers: tuple[str, ...] = ()
    prometheus: str | None = None

    @property
    def has_sources(self) -> bool:
        return bool(
            self.pool_status
            or self.dsn
            or self.logs
            or self.configs
            or self.pgbouncers
            or self.prometheus
        )


def parse_time_arg(text: str, now: datetime, default_tz: tzinfo) -> datetime:
    """Parse --since/--until: ISO 8601 (naive means default_tz) or a relative age like 2h."""
    age: float | None = None
    with contextlib.suppress(BadDuration):
        age = parse_duration(text, bare_unit=None)
    if age is not None:
        if not age <= MAX_AGE_DAYS * 86400:  # also refuses inf and nan
            raise BadOption(f"{text!r} is too far back (at most {MAX_AGE_DAYS}d)")
        return now - timedelta(seconds=age)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=default_tz)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):  # no such date, or beyond datetime's range in UTC
        raise BadOption(
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
        raise BadOption(f"unknown time zone {name!r} (try UTC or Europe/Berlin)") from None


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


def check_prometheus_url(url: str) -> None:
    """--prometheus must be an http(s) base URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadOption(
            f"--prometheus {redact_url(url)!r} is not an http(s) URL; "
            "give the server's base URL, e.g. http://prometheus:9090"
        )


@dataclass(frozen=True)
class RawSourceOptions:
    """Source options as the user typed them, before validation."""

    pool_status: list[str] | None
    dsn: str | None
    logs: list[str] | None
    configs: list[str] | None
    workers: int | None
    samples: int
    interval: float
    timeout: float
    since: str | None
    until: str | None
    log_tz: str | None
    pgbouncers: list[str] | None = None
    prometheus: str | None = None

    def validate(self, now: datetime) -> SourceOptions:
        """SourceOptions with times and zones resolved (raises BadOption on bad input)."""
        zone = resolve_log_tz(self.log_tz)
        since_at = parse_time_arg(self.since, now, zone) if self.since else None
        until_at = parse_time_arg(self.until, now, zone) if self.until else None
        if since_at and until_at and since_at >= until_at:
            raise BadOption("--since must be earlier than --until")
        if self.prometheus is not None:
            check_prometheus_url(self.prometheus)
        return SourceOptions(
            pool_status=_once_each(self.pool_status),
            dsn=self.dsn or default_dsn(),
            logs=_once_each(self.logs),
            configs=_once_each(self.configs),
            workers=self.workers,
            samples=self.samples,
            interval=self.interval,
            timeout=self.timeout,
            since=since_at,
            until=until_at,
            log_tz=zone,
            pgbouncers=_once_each(self.pgbouncers),
            prometheus=self.prometheus,
        )


def _once_each(given: list[str] | None) -> tuple[str, ...]:
    """A repeated option's values in order, each once: a source given twice is still one source."""
    return tuple(dict.fromkeys(given or ()))


NO_SOURCES_MESSAGE = (
    "no sources given: pass at least one of --pool-status URL, --dsn DSN (or set DATABASE_URL), "
    "--log PATH, --config PATH, --pgbouncer DSN or --prometheus URL "
    "(or --evidence FILE to diagnose a capture)"
)
