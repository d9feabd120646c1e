"""Run all collectors for one capture: live samples on a shared schedule, then files."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pooldoctor import __version__
from pooldoctor.collect.options import SourceOptions
from pooldoctor.collect.pool_status import fetch_pool_sample
from pooldoctor.evidence import (
    Evidence,
    LogFileEvidence,
    PgBouncerEvidence,
    PoolConfig,
    PoolInstance,
    PoolSample,
    PostgresEvidence,
    PrometheusEvidence,
    SampleError,
    SourceState,
    SourceStatus,
)
from pooldoctor.interrupts import INTERRUPTS, CaptureInterrupted, interrupt_name
from pooldoctor.redact import redact_url

if TYPE_CHECKING:  # the collectors themselves are imported when a source asks for them
    from pooldoctor.collect.pgbouncer import PgBouncerProbe
    from pooldoctor.collect.postgres import PostgresProbe
    from pooldoctor.collect.prometheus import History

Clock = Callable[[], datetime]
JOIN_MARGIN_SECONDS = 2.0
# Threads fetching one round; a larger fleet queues, which the round's join bound reports.
MAX_SAMPLING_THREADS = 256
# A pool-status URL that refused the connection has nothing listening: asking again every round
# only adds its timeout to each round. It is not retried (the source status says so).
REFUSED_PREFIX = "connection refused"
# Progress lines name each URL up to this many; a larger fleet is summarised in counts.
LISTED_URLS = 5


@dataclass(frozen=True)
class RoundReport:
    """What one sampling round got from each live source, for progress output."""

    number: int
    total: int
    outcomes: tuple[tuple[str, str], ...]  # (source name, "ok" | "error: why" | "not retried")

    def line(self) -> str:
        """`sampling 2/6: pool-status ok, postgres ok`"""
        parts = ", ".join(f"{name} {outcome}" for name, outcome in self.outcomes)
        return f"sampling {self.number}/{self.total}: {parts}"


RoundCallback = Callable[[RoundReport], None]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _PoolReadings:
    url: str
    samples: list[PoolSample] = field(default_factory=list)
    errors: list[SampleError] = field(default_factory=list)
    refused: bool = False  # refused once: not asked again
    refusal_reported: bool = False

    def round_outcome(self) -> str:
        """How this round went, for the progress line (the refusal is told once)."""
        if self.refused and self.refusal_reported:
            return "skipped (refused earlier)"
        if self.refused:
            self.refusal_reported = True
            return f"error: {self.errors[-1].error} (will not retry)"
        latest_sample = self.samples[-1].at if self.samples else None
        latest_error = self.errors[-1] if self.errors else None
        if latest_error is not None and (latest_sample is None or latest_error.at > latest_sample):
            return f"error: {latest_error.error}"
        return "ok"

    def instance(self, last: int | None = None) -> PoolInstance:
        samples, errors = tuple(self.samples), tuple(self.errors)
        if last is not None:
            samples, errors = samples[-last:], errors[-last:]
        return PoolInstance(redact_url(self.url), samples, errors)

    def keep_last(self, count: int) -> None:
        del self.samples[:-count]
        del self.errors[:-count]

    def status(self, started: datetime, finished: datetime) -> SourceStatus:
        if self.samples:
            state = SourceState.OK
            detail = f"{len(self.samples)} sample(s)"
            if self.errors:
                detail += f", {len(self.errors)} failed: {self.errors[-1].error}"
        else:
            state = SourceState.ERROR
            detail = self.errors[-1].error if self.errors else "no sample taken"
        if self.refused:
            detail += " (not retried after the refusal)"
        return SourceStatus(redact_url(self.url), "pool_status", state, detail, started, finished)


def _sample_round(
    executor: ThreadPoolExecutor,
    readings: list[_PoolReadings],
    probe: PostgresProbe | None,
    bouncers: list[PgBouncerProbe],
    timeout: float,
    clock: Clock,
    cancel: threading.Event | None = None,
) -> None:
    # Connection-holding probes first: with a fleet larger than the thread pool they must not
    # queue behind a thousand URL fetches.
    pending: list[Future[Any]] = [executor.submit(bouncer.sample) for bouncer in bouncers]
    if probe is not None:
        pending.append(executor.submit(probe.sample))
    futures: dict[Future[PoolSample | SampleError], _PoolReadings] = {
        executor.submit(fetch_pool_sample, r.url, timeout, cancel): r
        for r in readings
        if not r.refused
    }
    pending.extend(futures)
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
            reading.refused = result.error.startswith(REFUSED_PREFIX)


def _round_report(
    number: int,
    total: int,
    readings: list[_PoolReadings],
    probe: PostgresProbe | None,
    bouncers: list[PgBouncerProbe],
) -> RoundReport:
    outcomes: list[tuple[str, str]] = []
    pool_outcomes = [
        (f"pool-status {redact_url(r.url).split('://', 1)[-1]}", r.round_outcome())
        for r in readings
    ]
    if len(readings) == 1:
        outcomes.append(("pool-status", pool_outcomes[0][1]))
    elif len(readings) <= LISTED_URLS:
        outcomes.extend(pool_outcomes)
    elif pool_outcomes:
        outcomes.append(("pool-status", _fleet_outcome(pool_outcomes)))
    if probe is not None:
        outcomes.append(("postgres", probe.round_outcome()))
    for bouncer in bouncers:
        name = "pgbouncer" if len(bouncers) == 1 else f"pgbouncer {bouncer.target}"
        outcomes.append((name, bouncer.round_outcome()))
    return RoundReport(number, total, tuple(outcomes))


def _fleet_outcome(outcomes: list[tuple[str, str]]) -> str:
    """One outcome for a fleet of URLs: counts, and the first failure as an example."""
    ok = sum(outcome == "ok" for _, outcome in outcomes)
    failed = [(name, outcome) for name, outcome in outcomes if outcome.startswith("error")]
    skipped = len(outcomes) - ok - len(failed)
    summary = f"{ok}/{len(outcomes)} ok" + (
        f", {skipped} skipped (refused earlier)" * bool(skipped)
    )
    if not failed:
        return summary
    name, outcome = failed[0]
    example = f"{name.removeprefix('pool-status ')}: {outcome.removeprefix('error: ')}"
    return f"error: {len(failed)} failed, e.g. {example}; {summary}"


def capture(
    options: SourceOptions, clock: Clock = utc_now, on_round: RoundCallback | None = None
) -> Evidence:
    """Collect evidence from every requested source; failures become source statuses.

    `on_round` hears after each sampling round what each live source gave (for progress output).
    Ctrl-C or SIGTERM stops collection and raises CaptureInterrupted carrying the evidence
    collected so far (the caller writes it and exits 130/143).
    """
    run = _Run(options, clock, on_round)
    try:
        run.collect()
    except INTERRUPTS as exc:
        run.cancel.set()
        run.interrupted = interrupt_name(exc)
        raise CaptureInterrupted(run.evidence(), exc) from None
    return run.evidence()


class _Run:
    """One capture's progress, so that an interrupted one still yields what it has."""

    def __init__(
        self, options: SourceOptions, clock: Clock, on_round: RoundCallback | None
    ) -> None:
        self.options = options
        self.clock = clock
        self.on_round = on_round
        self.started = clock()
        self.statuses: list[SourceStatus] = []
        self.readings = [_PoolReadings(url) for url in options.pool_status]
        self.probe: PostgresProbe | None = None
        self.bouncers: list[PgBouncerProbe] = []
        self.postgres: PostgresEvidence | None = None
        self.pgbouncers: tuple[PgBouncerEvidence, ...] = ()
        self.pools_started = self.started
        self.history: History | None = None
        self.logs: tuple[LogFileEvidence, ...] = ()
        self.config: PoolConfig | None = None
        self.interrupted: str | None = None
        self.cancel = threading.Event()  # set on Ctrl-C: in-flight fetches give up at once
        self._phase = "starting"
        self._live_finished = False

    def collect(self) -> None:
        options = self.options
        self._phase = "connecting to PostgreSQL"
        self.probe = _open_postgres(options.dsn, options.timeout) if options.dsn else None
        self._phase = "connecting to PgBouncer"
        self.bouncers.extend(_open_pgbouncers(options.pgbouncers, options.timeout))
        self.pools_started = self.clock()
        self._phase = "sampling"
        if self.readings or self.probe is not None or self.bouncers:
            self._sample_all()
        self._finish_live()
        if options.prometheus:
            from pooldoctor.collect.prometheus import history_window, read_history

            self._phase = "reading Prometheus"
            prometheus_started = self.clock()
            start, end = history_window(options.since, options.until, prometheus_started)
            self.history = read_history(options.prometheus, start, end, options.timeout)
            self.statuses.append(self.history.status(prometheus_started, self.clock()))
        if options.logs:
            from pooldoctor.collect.logs import collect_logs

            self._phase = "reading logs"
            logs_started = self.clock()
            self.logs = collect_logs(
                options.logs, log_tz=options.log_tz or UTC, since=options.since, until=options.until
            )
            logs_finished = self.clock()
            self.statuses.extend(
                log_file_status(log, logs_started, logs_finished) for log in self.logs
            )
        if options.configs or options.workers is not None:
            from pooldoctor.collect.config import read_config

            self._phase = "reading config"
            self.config = read_config(options.configs, options.workers)
            self.statuses.append(config_status(self.config, self.clock()))
        self._phase = "done"

    def _sample_all(self) -> None:
        options = self.options
        live = len(self.readings) + len(self.bouncers) + (self.probe is not None)
        executor = ThreadPoolExecutor(
            max_workers=min(MAX_SAMPLING_THREADS, live), thread_name_prefix="sample"
        )
        try:
            for index in range(options.samples):
                round_started = time.monotonic()
                _sample_round(
                    executor,
                    self.readings,
                    self.probe,
                    self.bouncers,
                    options.timeout,
                    self.clock,
                    self.cancel,
                )
                if self.on_round is not None:
                    report = _round_report(
                        index + 1, options.samples, self.readings, self.probe, self.bouncers
                    )
                    self.on_round(report)
                if index + 1 < options.samples:
                    elapsed = time.monotonic() - round_started
                    time.sleep(max(0.0, options.interval - elapsed))
        finally:
            executor.shutdown(wait=False, cancel_futures=True)

    def _finish_live(self) -> None:
        if self._live_finished:
            return
        self._live_finished = True
        finished = self.clock()
        self.statuses.extend(r.status(self.pools_started, finished) for r in self.readings)
        if self.probe is not None:
            self.postgres = self.probe.finish()
            self.statuses.append(self.probe.status())
        self.pgbouncers = tuple(bouncer.finish() for bouncer in self.bouncers)
        self.statuses.extend(bouncer.status() for bouncer in self.bouncers)

    def evidence(self) -> Evidence:
        if self.interrupted is not None:
            phase = self._phase
            self._finish_live()
            at = self.clock()
            self.statuses.append(
                SourceStatus(
                    "pooldoctor",
                    "capture",
                    SourceState.ERROR,
                    f"{self.interrupted} while {phase}; evidence collected until then is kept",
                    at,
                    at,
                )
            )
        pools = tuple(r.instance() for r in self.readings)
        if self.history is not None:
            pools += self.history.pools
        evidence = Evidence(
            collected_at=self.clock(),
            started_at=self.started,
            pooldoctor_version=__version__,
            since=self.options.since,
            until=self.options.until,
            pools=pools,
            postgres=self.postgres,
            logs=self.logs,
            config=self.config,
            pgbouncers=self.pgbouncers,
            prometheus=self.history.evidence if self.history is not None else None,
            sources=tuple(self.statuses),
        )
        if self.interrupted is not None:
            return evidence  # stopping: no time for scanning the app's code
        from pooldoctor.collect.code import named_frames, scan_frames  # imports the scanner

        return replace(evidence, code=scan_frames(named_frames(evidence)))


def _open_postgres(dsn: str, timeout: float) -> PostgresProbe:
    """Open the PostgreSQL probe; psycopg is imported only when a DSN is given."""
    from pooldoctor.collect.postgres import open_postgres

    return open_postgres(dsn, timeout)


def _open_pgbouncers(dsns: tuple[str, ...], timeout: float) -> list[PgBouncerProbe]:
    if not dsns:
        return []
    from pooldoctor.collect.pgbouncer import open_pgbouncer

    return [open_pgbouncer(dsn, timeout) for dsn in dsns]


class LiveSampler:
    """The live sources (pool-status endpoints, PostgreSQL, PgBouncer) sampled round by round
    for as long as the caller wants: what `watch` runs on (`capture` runs a fixed count).

    `keep_rounds` bounds memory for long runs; refused URLs are asked again every round (a live
    view outlasts an app restart).
    """

    def __init__(
        self, options: SourceOptions, clock: Clock = utc_now, *, keep_rounds: int | None = None
    ) -> None:
        self.options = options
        self.clock = clock
        self.keep_rounds = keep_rounds
        self.rounds = 0
        self.started_at = clock()
        self._readings = [_PoolReadings(url) for url in options.pool_status]
        self._probe = _open_postgres(options.dsn, options.timeout) if options.dsn else None
        self._bouncers = _open_pgbouncers(options.pgbouncers, options.timeout)
        self.sampled_at = self.clock()
        self._executor: ThreadPoolExecutor | None = None
        live = len(self._readings) + len(self._bouncers) + (self._probe is not None)
        if live:
            self._executor = ThreadPoolExecutor(
                max_workers=min(MAX_SAMPLING_THREADS, live), thread_name_prefix="sample"
            )

    def sample(self) -> None:
        """One round: every live source once, in parallel, bounded by the timeout."""
        if self._executor is None:
            return
        for reading in self._readings:
            reading.refused = reading.refusal_reported = False
        _sample_round(
            self._executor,
            self._readings,
            self._probe,
            self._bouncers,
            self.options.timeout,
            self.clock,
        )
        self.rounds += 1
        self.sampled_at = self.clock()
        if self.keep_rounds is not None:
            for reading in self._readings:
                reading.keep_last(self.keep_rounds)
            for probe in (self._probe, *self._bouncers):
                if probe is not None:
                    probe.keep_last(self.keep_rounds)

    def close(self) -> None:
        """Stop sampling and close the database connections (idempotent)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self._probe is not None:
            self._probe.finish()
        for bouncer in self._bouncers:
            bouncer.finish()

    def evidence(self, once: ReadOnce | None = None, last_rounds: int | None = None) -> Evidence:
        """What was sampled so far (the latest `last_rounds` only, if given), plus the sources
        read once."""
        statuses = [r.status(self.started_at, self.sampled_at) for r in self._readings]
        postgres = None
        if self._probe is not None:
            postgres = self._probe.snapshot(last_rounds)
            statuses.append(self._probe.status())
        statuses.extend(bouncer.status() for bouncer in self._bouncers)
        once = once or ReadOnce()
        return Evidence(
            collected_at=self.clock(),
            started_at=self.started_at,
            pooldoctor_version=__version__,
            since=self.options.since,
            until=self.options.until,
            pools=(*(r.instance(last_rounds) for r in self._readings), *once.history_pools),
            postgres=postgres,
            logs=once.logs,
            config=once.config,
            pgbouncers=tuple(bouncer.snapshot(last_rounds) for bouncer in self._bouncers),
            prometheus=once.prometheus,
            sources=(*statuses, *once.statuses),
        )


@dataclass(frozen=True)
class ReadOnce:
    """What the sources a live view reads once gave: Prometheus history, logs, config."""

    history_pools: tuple[PoolInstance, ...] = ()
    prometheus: PrometheusEvidence | None = None
    logs: tuple[LogFileEvidence, ...] = ()
    config: PoolConfig | None = None
    statuses: tuple[SourceStatus, ...] = ()


def read_once(options: SourceOptions, clock: Clock = utc_now) -> ReadOnce:
    """Read Prometheus history, logs and config; each failure becomes a source status."""
    statuses: list[SourceStatus] = []
    history_pools: tuple[PoolInstance, ...] = ()
    prometheus = None
    if options.prometheus:
        from pooldoctor.collect.prometheus import history_window, read_history

        prometheus_started = clock()
        start, end = history_window(options.since, options.until, prometheus_started)
        history = read_history(options.prometheus, start, end, options.timeout)
        history_pools, prometheus = history.pools, history.evidence
        statuses.append(history.status(prometheus_started, clock()))
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
    return ReadOnce(history_pools, prometheus, logs, config, tuple(statuses))


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
