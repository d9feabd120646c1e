"""`pooldoctor check`: a Monitoring Plugins style check, one status line with perfdata."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from pooldoctor.commands import options as opt
from pooldoctor.exitcodes import STATUS_EXIT

if TYPE_CHECKING:
    from pooldoctor.collect.options import SourceOptions
    from pooldoctor.evidence import Evidence


def check_command(
    pool_status: opt.PoolStatusOpt = None,
    dsn: opt.DsnOpt = None,
    log: opt.LogOpt = None,
    config: opt.ConfigOpt = None,
    samples: opt.SamplesOpt = 1,
    interval: opt.IntervalOpt = 2.0,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            "-t",
            metavar="SECONDS",
            min=0.1,
            max=300.0,
            help="Per-call timeout for every source, seconds.",
        ),
    ] = 5.0,
    since: opt.SinceOpt = None,
    until: opt.UntilOpt = None,
    log_tz: opt.LogTzOpt = None,
    pgbouncer: opt.PgBouncerOpt = None,
    prometheus: opt.PrometheusOpt = None,
    warning: Annotated[
        float,
        typer.Option(
            "--warning",
            "-w",
            metavar="PCT",
            min=0.0,
            max=100.0,
            help="WARNING when an instance's pool is more than this percent checked out.",
        ),
    ] = 80.0,
    critical: Annotated[
        float,
        typer.Option(
            "--critical",
            "-c",
            metavar="PCT",
            min=0.0,
            max=100.0,
            help="CRITICAL when an instance's pool is more than this percent checked out.",
        ),
    ] = 95.0,
    waiting_warning: Annotated[
        int | None,
        typer.Option(
            "--waiting-warning",
            metavar="N",
            min=0,
            help="WARNING when more requests than this wait.",
        ),
    ] = None,
    waiting_critical: Annotated[
        int | None,
        typer.Option(
            "--waiting-critical",
            metavar="N",
            min=0,
            help="CRITICAL when more requests than this wait.",
        ),
    ] = None,
    idle_warning: Annotated[
        float | None,
        typer.Option(
            "--idle-in-transaction-warning",
            metavar="SECONDS",
            min=0.0,
            help="WARNING when a session has been idle in transaction longer (seconds; --dsn).",
        ),
    ] = None,
    idle_critical: Annotated[
        float | None,
        typer.Option(
            "--idle-in-transaction-critical",
            metavar="SECONDS",
            min=0.0,
            help="CRITICAL when a session has been idle in transaction longer (seconds; --dsn).",
        ),
    ] = None,
) -> int:
    """Monitoring plugin: one line `POOLDOCTOR OK|WARNING|CRITICAL|UNKNOWN - ... | perfdata`.

    Exit 0 ok, 1 warning, 2 critical, 3 unknown (also for usage errors, as plugins do).
    """
    from pooldoctor.collect.sampling import utc_now
    from pooldoctor.monitoring import Thresholds, evaluate

    _ordered("--warning", warning, "--critical", critical)
    _ordered("--waiting-warning", waiting_warning, "--waiting-critical", waiting_critical)
    _ordered(
        "--idle-in-transaction-warning",
        idle_warning,
        "--idle-in-transaction-critical",
        idle_critical,
    )
    sources = opt.sources_from(locals(), utc_now())
    if (
        not (sources.pool_status or sources.dsn or sources.logs or sources.pgbouncers)
        and not sources.prometheus
    ):
        raise typer.BadParameter(
            "no sources given: pass --pool-status URL, --dsn DSN (or set DATABASE_URL), "
            "--pgbouncer DSN, --prometheus URL or --log PATH"
        )
    thresholds = Thresholds(
        fill_warning=warning,
        fill_critical=critical,
        waiting_warning=waiting_warning,
        waiting_critical=waiting_critical,
        idle_in_transaction_warning=idle_warning,
        idle_in_transaction_critical=idle_critical,
    )
    verdict = evaluate(_sample(sources), thresholds)
    print(verdict.line())
    return int(STATUS_EXIT[verdict.status])


def _ordered(low_name: str, low: float | None, high_name: str, high: float | None) -> None:
    if low is not None and high is not None and low > high:
        raise typer.BadParameter(f"{low_name} ({low:g}) must not exceed {high_name} ({high:g})")


def _sample(sources: SourceOptions) -> Evidence:
    """The live sources sampled --samples times, then the ones read once: no code scanning or
    anything else a plugin run every minute does not need."""
    from pooldoctor.collect.once import read_once
    from pooldoctor.collect.sampling import Sampler

    sampler = Sampler(sources)
    try:
        sampler.open()
        if sampler.live:
            sampler.run(sources.samples)
    finally:
        sampler.close()
    return sampler.evidence(read_once(sources, sampler.clock))
