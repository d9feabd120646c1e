"""The one sampling loop of the live sources, which capture, watch and check all run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pooldoctor import __version__
from pooldoctor.collect.once import ReadOnce
from pooldoctor.collect.options import SourceOptions
from pooldoctor.collect.pool_status import fetch_pool_sample
from pooldoctor.evidence import (
    Evidence,
    PgBouncerEvidence,
    PoolInstance,
    PoolSample,
    PostgresEvidence,
    SampleError,
    SourceState,
    SourceStatus,
)
from pooldoctor.interrupts import INTERRUPTS
from pooldoctor.redact import redact_url

if TYPE_CHECKING:  # the collectors themselves are imported when a source asks for them
    from pooldoctor.collect.pgbouncer import PgBouncerProbe
    from pooldoctor.collect.postgres import PostgresProbe

Clock = Callable[[], datetime]
JOIN_MARGIN_SECONDS = 2.0
# Threads fetching one round; a larger fleet queues, which the round's join bound reports.
MAX_SAMPLING_THREADS = 256
# A pool-status URL that refused the connection has nothing listening: asking again every round
# only adds its timeout to each round. A capture does not retry it (the source status says so);
# a watch does, as a live view outlasts an app restart.
REFUSED_PREFIX = "connection refused"
# Progress lines name each URL up to this many; a larger fleet is summarised in counts.
LISTED_URLS = 5


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RoundReport:
    """What one sampling round got from each live source, for progress output."""

    number: int
    total: int | None  # None: rounds until the caller stops
    outcomes: tuple[tuple[str, str], ...]  # (source name, "ok" | "error: why" | "not retried")

    def line(self) -> str:
        """`sampling 2/6: pool-status ok, postgres ok`"""
        parts = ", ".join(f"{name} {outcome}" for name, outcome in self.outcomes)
        of_total = "" if self.total is None else f"/{self.total}"
        return f"sampling {self.number}{of_total}: {parts}"


RoundCallback = Callable[[RoundReport], None]
# Waits until the given time.monotonic() deadline for the next round; False stops the loop.
WaitUntil = Callable[[float], bool]


def sleep_until(deadline: float) -> bool:
    """The plain wait between rounds: sleep, then go on."""
    time.sleep(max(0.0, deadline - time.monotonic()))
    return True


@dataclass
class _PoolReadings:
    url: str
    samples: list[PoolSample] = field(default_factory=list)
    errors: list[SampleError] = field(default_factory=list)
    retry_refused: bool = False  # ask again every round even after a refusal (watch)
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


class Sampler:
    """Pool-status endpoints, PostgreSQL and PgBouncer sampled together, round by round.

    One read-only connection per database source, every call bounded by the options' timeout,
    each source's failures kept as its own errors. `keep_rounds` bounds memory for long runs;
    `retry_refused` asks a refusing URL again every round (a live view outlasts an app restart).
    """

    def __init__(
        self,
        options: SourceOptions,
        clock: Clock = utc_now,
        *,
        keep_rounds: int | None = None,
        retry_refused: bool = False,
    ) -> None:
        self.options = options
        self.clock = clock
        self.keep_rounds = keep_rounds
        self.rounds = 0
        self.started_at = clock()  # the evidence's start: before connecting
        self.sampling_started = self.sampled_at = self.started_at
        self.cancel = threading.Event()  # set on Ctrl-C: in-flight fetches give up at once
        self.phase = "starting"
        self._readings = [
            _PoolReadings(url, retry_refused=retry_refused) for url in options.pool_status
        ]
        self._probe: PostgresProbe | None = None
        self._bouncers: list[PgBouncerProbe] = []
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    @property
    def live(self) -> bool:
        """Whether any live source was asked for."""
        options = self.options
        return bool(options.pool_status or options.dsn or options.pgbouncers)

    def open(self) -> None:
        """Connect to PostgreSQL and PgBouncer (each failure is kept as that source's status)."""
        options = self.options
        with self._cancelling_on_interrupt():
            if options.dsn:
                self.phase = "connecting to PostgreSQL"
                self._probe = _open_postgres(options.dsn, options.timeout)
            if options.pgbouncers:
                self.phase = "connecting to PgBouncer"
                self._bouncers.extend(_open_pgbouncers(options.pgbouncers, options.timeout))
        self.sampling_started = self.sampled_at = self.clock()
        sources = len(self._readings) + len(self._bouncers) + (self._probe is not None)
        if sources:
            self._executor = ThreadPoolExecutor(
                max_workers=min(MAX_SAMPLING_THREADS, sources), thread_name_prefix="sample"
            )

    def run(
        self,
        rounds: int | None,
        on_round: RoundCallback | None = None,
        wait_until: WaitUntil = sleep_until,
    ) -> None:
        """Sample `rounds` rounds (None: until `wait_until` says stop), one every --interval.

        `on_round` hears each round's report. Ctrl-C or SIGTERM cancels the fetches in flight
        and re-raises: what was sampled so far stays available to `evidence()`.
        """
        with self._cancelling_on_interrupt():
            self.phase = "sampling"
            while rounds is None or self.rounds < rounds:
                round_started = time.monotonic()
                report = self.sample(rounds)
                if on_round is not None:
                    on_round(report)
                if rounds is not None and self.rounds >= rounds:
                    break
                if not wait_until(round_started + self.options.interval):
                    break

    def sample(self, total: int | None = None) -> RoundReport:
        """One round: every live source once, in parallel, bounded by the timeout."""
        if self._executor is None:
            self.rounds += 1
            return RoundReport(self.rounds, total, ())
        _sample_round(
            self._executor,
            self._readings,
            self._probe,
            self._bouncers,
            self.options.timeout,
            self.clock,
            self.cancel,
        )
        self.rounds += 1
        self.sampled_at = self.clock()
        report = _round_report(self.rounds, total, self._readings, self._probe, self._bouncers)
        if self.keep_rounds is not None:
            for reading in self._readings:
                reading.keep_last(self.keep_rounds)
            for probe in (self._probe, *self._bouncers):
                if probe is not None:
                    probe.keep_last(self.keep_rounds)
        return report

    def close(self) -> None:
        """Stop sampling and close the database connections (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self._probe is not None:
            self._probe.finish()
        for bouncer in self._bouncers:
            bouncer.finish()

    def pools(self, last_rounds: int | None = None) -> tuple[PoolInstance, ...]:
        """Each pool-status URL's samples and errors (the latest `last_rounds` only, if given)."""
        return tuple(reading.instance(last_rounds) for reading in self._readings)

    def postgres(self, last_rounds: int | None = None) -> PostgresEvidence | None:
        """The PostgreSQL samples, if a DSN was given."""
        if self._probe is None:
            return None
        return self._probe.finish() if self._closed else self._probe.snapshot(last_rounds)

    def pgbouncers(self, last_rounds: int | None = None) -> tuple[PgBouncerEvidence, ...]:
        """Each PgBouncer's samples."""
        if self._closed:
            return tuple(bouncer.finish() for bouncer in self._bouncers)
        return tuple(bouncer.snapshot(last_rounds) for bouncer in self._bouncers)

    def statuses(self) -> tuple[SourceStatus, ...]:
        """How each live source went so far."""
        statuses = [r.status(self.sampling_started, self.sampled_at) for r in self._readings]
        if self._probe is not None:
            statuses.append(self._probe.status())
        statuses.extend(bouncer.status() for bouncer in self._bouncers)
        return tuple(statuses)

    def evidence(
        self,
        once: ReadOnce | None = None,
        last_rounds: int | None = None,
        extra_statuses: tuple[SourceStatus, ...] = (),
    ) -> Evidence:
        """What was sampled so far (the latest `last_rounds` only, if given), with what the
        sources read once gave."""
        once = once or ReadOnce()
        return Evidence(
            collected_at=self.clock(),
            started_at=self.started_at,
            pooldoctor_version=__version__,
            since=self.options.since,
            until=self.options.until,
            pools=(*self.pools(last_rounds), *once.history_pools),
            postgres=self.postgres(last_rounds),
            logs=once.logs,
            config=once.config,
            pgbouncers=self.pgbouncers(last_rounds),
            prometheus=once.prometheus,
            sources=(*self.statuses(), *once.statuses, *extra_statuses),
        )

    @contextmanager
    def _cancelling_on_interrupt(self) -> Iterator[None]:
        """On Ctrl-C or SIGTERM, the fetches in flight give up at once (then it re-raises)."""
        try:
            yield
        except INTERRUPTS:
            self.cancel.set()
            raise


def _sample_round(
    executor: ThreadPoolExecutor,
    readings: list[_PoolReadings],
    probe: PostgresProbe | None,
    bouncers: list[PgBouncerProbe],
    timeout: float,
    clock: Clock,
    cancel: threading.Event,
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
            reading.refused = not reading.retry_refused and result.error.startswith(REFUSED_PREFIX)


def _round_report(
    number: int,
    total: int | None,
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


def _open_postgres(dsn: str, timeout: float) -> PostgresProbe:
    """Open the PostgreSQL probe; psycopg is imported only when a DSN is given."""
    from pooldoctor.collect.postgres import open_postgres

    return open_postgres(dsn, timeout)


def _open_pgbouncers(dsns: tuple[str, ...], timeout: float) -> list[PgBouncerProbe]:
    from pooldoctor.collect.pgbouncer import open_pgbouncer

    return [open_pgbouncer(dsn, timeout) for dsn in dsns]
