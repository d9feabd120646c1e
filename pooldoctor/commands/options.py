"""Typer signatures of the source options shared by every sampling command, and their validation."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from copy import copy
from datetime import datetime
from typing import Annotated, Any, get_args, get_type_hints

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


def _log_time_option(flag: str, relation: str) -> Any:
    """--since / --until, with the formats `parse_time_arg` accepts."""
    return typer.Option(
        flag, metavar="TIME", help=f"Only log lines {relation} TIME (ISO 8601, or 30m/2h/1d ago)."
    )


SinceOpt = Annotated[str | None, _log_time_option("--since", "at or after")]
UntilOpt = Annotated[str | None, _log_time_option("--until", "before")]
LogTzOpt = Annotated[
    str | None,
    typer.Option(
        "--log-tz",
        metavar="TZ",
        help="Time zone of log timestamps that carry none (default: local).",
    ),
]


def also_spelled(option: Any, *aliases: str) -> Any:
    """An option declaration (`Annotated[type, typer.Option(...)]`) that also takes `aliases`."""
    kind, declaration = get_args(option)
    spelled = copy(declaration)
    spelled.param_decls = (*declaration.param_decls, *aliases)
    return Annotated[kind, spelled]


def validated(raw: RawSourceOptions, now: datetime) -> SourceOptions:
    """The collect layer's validation, its errors turned into typer's usage errors."""
    try:
        return raw.validate(now)
    except BadOption as exc:
        raise typer.BadParameter(str(exc)) from None


def _source_parameters(
    pool_status: PoolStatusOpt = None,
    dsn: DsnOpt = None,
    log: LogOpt = None,
    config: ConfigOpt = None,
    workers: WorkersOpt = None,
    samples: SamplesOpt = 3,
    interval: IntervalOpt = 2.0,
    timeout: TimeoutOpt = 5.0,
    since: SinceOpt = None,
    until: UntilOpt = None,
    log_tz: LogTzOpt = None,
    pgbouncer: PgBouncerOpt = None,
    prometheus: PrometheusOpt = None,
) -> RawSourceOptions:
    """The source options of every sampling command, declared once, in --help order."""
    return RawSourceOptions(
        pool_status=pool_status,
        dsn=dsn,
        logs=log,
        configs=config,
        workers=workers,
        samples=samples,
        interval=interval,
        timeout=timeout,
        since=since,
        until=until,
        log_tz=log_tz,
        pgbouncers=pgbouncer,
        prometheus=prometheus,
    )


SOURCES_PARAMETER = "raw_sources"
"""The command parameter that stands for all source options, where they appear in --help."""

Command = Callable[..., int]


def with_sources(
    *,
    fixed: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
) -> Callable[[Command], Command]:
    """Give a command the shared source options in place of its `raw_sources: RawSourceOptions`.

    `fixed` names options the command does not offer (with the value it means), `defaults`
    changes a default, `options` replaces an option's typer declaration. typer reads the
    resulting signature (`__signature__`, `__annotations__`); the command gets one value.
    """
    fixed = dict(fixed or {})
    hints = get_type_hints(_source_parameters, include_extras=True)
    shared = [
        parameter.replace(
            annotation=(options or {}).get(parameter.name, hints[parameter.name]),
            default=(defaults or {}).get(parameter.name, parameter.default),
        )
        for parameter in inspect.signature(_source_parameters).parameters.values()
        if parameter.name not in fixed
    ]
    shared_defaults = {parameter.name: parameter.default for parameter in shared}

    def decorate(command: Command) -> Command:
        own_hints = get_type_hints(command, include_extras=True)
        parameters: list[inspect.Parameter] = []
        for parameter in inspect.signature(command).parameters.values():
            if parameter.name == SOURCES_PARAMETER:
                parameters.extend(shared)
            else:
                parameters.append(parameter.replace(annotation=own_hints[parameter.name]))

        @functools.wraps(command)
        def with_source_options(**given: Any) -> int:
            values = {name: given.pop(name, value) for name, value in shared_defaults.items()}
            return command(**given, raw_sources=_source_parameters(**values, **fixed))

        exposed: Any = with_source_options
        exposed.__signature__ = inspect.Signature(parameters, return_annotation=int)
        exposed.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": int}
        return with_source_options

    return decorate
