"""The sources read once per run, after the live sampling: Prometheus history, logs, config."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime

from pooldoctor.collect.options import SourceOptions
from pooldoctor.evidence import (
    LogFileEvidence,
    PoolConfig,
    PoolInstance,
    PrometheusEvidence,
    SourceState,
    SourceStatus,
)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class ReadOnce:
    """What the sources read once gave: Prometheus history, logs, config, and their statuses."""

    history_pools: tuple[PoolInstance, ...] = ()
    prometheus: PrometheusEvidence | None = None
    logs: tuple[LogFileEvidence, ...] = ()
    config: PoolConfig | None = None
    statuses: tuple[SourceStatus, ...] = ()


PhaseCallback = Callable[[str, ReadOnce], None]


def _ignore(phase: str, so_far: ReadOnce) -> None:
    return None


def read_once(options: SourceOptions, clock: Clock, on_phase: PhaseCallback = _ignore) -> ReadOnce:
    """Read Prometheus history, logs and config; each failure becomes a source status.

    `on_phase` hears what is read next ("reading logs") and what was read so far, which an
    interrupted capture keeps.
    """
    read = ReadOnce()
    if options.prometheus:
        from pooldoctor.collect.prometheus import history_window, read_history

        on_phase("reading Prometheus", read)
        prometheus_started = clock()
        start, end = history_window(options.since, options.until, prometheus_started)
        history = read_history(options.prometheus, start, end, options.timeout)
        status = history.status(prometheus_started, clock())
        read = replace(
            read,
            history_pools=history.pools,
            prometheus=history.evidence,
            statuses=(*read.statuses, status),
        )
    if options.logs:
        from pooldoctor.collect.logs import collect_logs

        on_phase("reading logs", read)
        logs_started = clock()
        logs = collect_logs(
            options.logs, log_tz=options.log_tz or UTC, since=options.since, until=options.until
        )
        logs_finished = clock()
        statuses = (log_file_status(log, logs_started, logs_finished) for log in logs)
        read = replace(read, logs=logs, statuses=(*read.statuses, *statuses))
    if options.configs or options.workers is not None:
        from pooldoctor.collect.config import read_config

        on_phase("reading config", read)
        config = read_config(options.configs, options.workers)
        read = replace(
            read, config=config, statuses=(*read.statuses, config_status(config, clock()))
        )
    return read


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
    unread = log.problems and not log.lines and log.first is None  # a seek dated it: read
    if (log.lines and not log.timestamped_lines) or unread:
        state, detail = SourceState.ERROR, "; ".join(log.problems) or "no timestamp recognised"
    else:
        state = SourceState.OK
        detail = f"{log.lines} line(s), {sum(e.count for e in log.events)} classified event(s)"
        if log.problems:
            detail += "; " + "; ".join(log.problems)
    return SourceStatus(log.path, "log", state, detail, started, finished)
