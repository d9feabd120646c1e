"""`pooldoctor check`: a Monitoring Plugins style check, one status line with perfdata."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pooldoctor.collect.options import RawSourceOptions
from pooldoctor.commands import options as opt
from pooldoctor.exitcodes import STATUS_EXIT

if TYPE_CHECKING:
    from pooldoctor.collect.options import SourceOptions
    from pooldoctor.evidence import Evidence


@dataclass(frozen=True)
class Measure:
    """What a WARNING/CRITICAL option pair compares: `--{prefix}warning`, `--{prefix}critical`."""

    prefix: str
    metavar: str
    when: str
    minimum: float
    maximum: float | None = None

    def flag(self, level: str) -> str:
        return f"--{self.prefix}{level.lower()}"

    def option(self, level: str, *aliases: str) -> Any:
        """The typer declaration of the `level` (WARNING or CRITICAL) threshold."""
        return typer.Option(
            self.flag(level),
            *aliases,
            metavar=self.metavar,
            help=f"{level} when {self.when}",
            min=self.minimum,
            max=self.maximum,
        )

    def ordered(self, warning: float | None, critical: float | None) -> None:
        """Refuse a WARNING threshold above the CRITICAL one."""
        if warning is not None and critical is not None and warning > critical:
            raise typer.BadParameter(
                f"{self.flag('WARNING')} ({warning:g}) must not exceed "
                f"{self.flag('CRITICAL')} ({critical:g})"
            )


FILL = Measure(
    "",
    "PCT",
    "an instance's pool is more than this percent checked out.",
    0.0,
    100.0,
)
WAITING = Measure("waiting-", "N", "more requests than this wait.", 0)
IDLE = Measure(
    "idle-in-transaction-",
    "SECONDS",
    "a session has been idle in transaction longer (seconds; --dsn).",
    0.0,
)


@opt.with_sources(
    fixed={"workers": None},
    defaults={"samples": 1},
    options={"timeout": opt.also_spelled(opt.TimeoutOpt, "-t")},
)
def check_command(
    raw_sources: RawSourceOptions,
    warning: Annotated[float, FILL.option("WARNING", "-w")] = 80.0,
    critical: Annotated[float, FILL.option("CRITICAL", "-c")] = 95.0,
    waiting_warning: Annotated[int | None, WAITING.option("WARNING")] = None,
    waiting_critical: Annotated[int | None, WAITING.option("CRITICAL")] = None,
    idle_warning: Annotated[float | None, IDLE.option("WARNING")] = None,
    idle_critical: Annotated[float | None, IDLE.option("CRITICAL")] = None,
) -> int:
    """Monitoring plugin: one line `POOLDOCTOR OK|WARNING|CRITICAL|UNKNOWN - ... | perfdata`.

    Exit 0 ok, 1 warning, 2 critical, 3 unknown (also for usage errors, as plugins do).
    """
    from pooldoctor.collect.session import utc_now
    from pooldoctor.monitoring import Thresholds, evaluate

    FILL.ordered(warning, critical)
    WAITING.ordered(waiting_warning, waiting_critical)
    IDLE.ordered(idle_warning, idle_critical)
    sources = opt.validated(raw_sources, utc_now())
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


def _sample(sources: SourceOptions) -> Evidence:
    """The live sources sampled --samples times, then the ones read once: no code scanning or
    anything else a plugin run every minute does not need."""
    from pooldoctor.collect.session import LiveSampler, read_once

    sampler = LiveSampler(sources)
    try:
        for index in range(sources.samples):
            started = time.monotonic()
            sampler.sample()
            if index + 1 < sources.samples:
                time.sleep(max(0.0, sources.interval - (time.monotonic() - started)))
    finally:
        sampler.close()
    return sampler.evidence(read_once(sources))
