"""Run all collectors for one capture: live samples on a shared schedule, then files."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pooldoctor import __version__
from pooldoctor.collect.pool_status import fetch_pool_sample, redact_url
from pooldoctor.commands.options import SourceOptions
from pooldoctor.evidence import (
    Evidence,
    LogFileEvidence,
    PoolConfig,
    PoolInstance,
    PoolSample,
    SampleError,
    SourceState,
    SourceStatus,
)

if TYPE_CHECKING:
    from pooldoctor.collect.postgres import PostgresProbe

Clock = Callable[[], datetime]
JOIN_MARGIN_SECONDS = 2.0


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _PoolReadings:
    url: str
    samples: list[PoolSample] = field(default_factory=list)
    errors: list[SampleError] = field(default_factory=list)

    def instance(self) -> PoolInstance:
        return PoolInstance(redact_url(self.url), tuple(self.samples), tuple(self.errors))

    def status(self, started: datetime, finished: datetime) -> SourceStatus:
        if self.samples:
            state = SourceState.OK
            detail = f"{len(self.samples)} sample(s)"
            if self.errors:
                detail += f", {len(self.errors)} failed: {self.errors[-1].error}"
        else:
            state = SourceState.ERROR
            detail = self.errors[-1].error if self.errors else "no sample taken"
        return SourceStatus(redact_url(self.url), "pool_status", state, detail, started, finished)


def _sample_round(
    executor: ThreadPoolExecutor,
    readings: list[_PoolReadings],
    probe: PostgresProbe | None,
    timeout: float,
    clock: Clock,
) -> None:
    futures: dict[Future[PoolSample | SampleError], _PoolReadings] = {
        executor.submit(fetch_pool_sample, r.url, timeout): r for r in readings
    }
    pending: list[Future[Any]] = list(futures)
    if probe is not None:
        pending.append(executor.submit(probe.sample))
    wait(pending, timeout=timeout + JOIN_MARGIN_SECONDS)
    for future, reading in futures.items():
        if not future.done():
            reading.errors.append(SampleError(clock(), f"no answer within {timeout:g}s"))
            continue
        result = future.result()
        if isinstance(result, PoolSample):
            reading.samples.append(result)
        else:
            reading.errors.append(result)


def capture(options: SourceOptions, clock: Clock = utc_now) -> Evidence:
    """Collect evidence from every requested source; failures become source statuses."""
    started = clock()
    statuses: list[SourceStatus] = []
    readings = [_PoolReadings(url) for url in options.pool_status]
    probe = _open_postgres(options.dsn, options.timeout) if options.dsn else None
    pools_started = clock()
    if readings or probe is not None:
        executor = ThreadPoolExecutor(max_workers=len(readings) + 1, thread_name_prefix="sample")
        try:
            for index in range(options.samples):
                round_started = time.monotonic()
                _sample_round(executor, readings, probe, options.timeout, clock)
                if index + 1 < options.samples:
                    elapsed = time.monotonic() - round_started
                    time.sleep(max(0.0, options.interval - elapsed))
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
    pools_finished = clock()
    statuses.extend(r.status(pools_started, pools_finished) for r in readings)
    postgres = None
    if probe is not None:
        postgres = probe.finish()
        statuses.append(probe.status())
    logs: tuple[LogFileEvidence, ...] = ()
    if options.logs:
        from pooldoctor.collect.logs import collect_logs

        logs_started = clock()
        logs = collect_logs(
            options.logs, log_tz=options.log_tz or UTC, since=options.since, until=options.until
        )
        logs_finished = clock()
        statuses.extend(log_file_status(log, logs_started, logs_finished) for log in logs)
    config = None
    if options.configs or options.workers is not None:
        from pooldoctor.collect.config import read_config

        config = read_config(options.configs, options.workers)
        statuses.append(config_status(config, clock()))
    return Evidence(
        collected_at=clock(),
        started_at=started,
        pooldoctor_version=__version__,
        since=options.since,
        until=options.until,
        pools=tuple(r.instance() for r in readings),
        postgres=postgres,
        logs=logs,
        config=config,
        sources=tuple(statuses),
    )


def _open_postgres(dsn: str, timeout: float) -> PostgresProbe:
    """Open the PostgreSQL probe; psycopg is imported only when a DSN is given."""
    from pooldoctor.collect.postgres import open_postgres

    return open_postgres(dsn, timeout)


def config_status(config: PoolConfig, at: datetime) -> SourceStatus:
    """Summarise the config source: error only when nothing usable was read."""
    values = [
        getattr(config, f.name) for f in fields(config) if f.name not in ("files", "problems")
    ]
    usable = any(value is not None for value in values)
    state = SourceState.OK if usable or not config.problems else SourceState.ERROR
    detail = "; ".join(config.problems) or f"{len(config.files)} file(s)"
    return SourceStatus("config", "config", state, detail, at, at)


def log_file_status(log: LogFileEvidence, started: datetime, finished: datetime) -> SourceStatus:
    """Summarise one log file: an error when nothing in it could be read or dated."""
    if (log.lines and not log.timestamped_lines) or (log.problems and not log.lines):
        state, detail = SourceState.ERROR, "; ".join(log.problems) or "no timestamp recognised"
    else:
        state = SourceState.OK
        detail = f"{log.lines} line(s), {sum(e.count for e in log.events)} classified event(s)"
        if log.problems:
            detail += "; " + "; ".join(log.problems)
    return SourceStatus(log.path, "log", state, detail, started, finished)
