"""Which of the app's open transactions are held (frozen past the baseline), which stream
(cursor FETCHes under one old transaction), which rotate; and the code paths that explain them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pooldoctor.durations import format_duration
from pooldoctor.evidence import MOMENT_GC_CLEANUP, CodeFlag, Evidence, LoggedException
from pooldoctor.readings.app import IDLE_IN_TRANSACTION
from pooldoctor.readings.baseline import Baseline, baseline
from pooldoctor.readings.codepaths import (
    CodePath,
    MatchWindow,
    exceptions,
    explain,
    explain_with_requests,
    failed_requests,
    match_window,
)
from pooldoctor.readings.logs import LogSignal
from pooldoctor.readings.pools import PoolSignal, pool_signal
from pooldoctor.readings.sessions import HeldSession, SessionTrend, seconds_between, session_trend
from pooldoctor.readings.timing import Lockstep, lockstep

CURSOR_FETCH = re.compile(r"^\s*FETCH\b.*\bFROM\b", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class HoldReading:
    """The app's transactions over the samples, judged against its own baseline."""

    baseline: Baseline
    trend: SessionTrend | None
    pool: PoolSignal
    frozen: tuple[HeldSession, ...]  # same pid, xact_start and state_change in every sample
    held: tuple[HeldSession, ...]  # frozen and older than baseline.held_after
    streaming: tuple[HeldSession, ...]  # one transaction, cursor FETCHes moving on
    oldest_in_tx: float  # oldest idle-in-transaction age seen in any sample
    code_paths: tuple[CodePath, ...]
    holder_paths: tuple[CodePath, ...] = ()  # the same for instrumented holders' checkouts
    gc_paths: tuple[CodePath, ...] = ()  # exceptions logged just before GC cleanups
    code: tuple[CodeFlag, ...] = ()  # scan findings in the functions of named app frames
    match_window: MatchWindow | None = None  # how exceptions were lined up with moments

    def scan_flags(self, frame: str | None) -> list[CodeFlag]:
        """`pooldoctor scan` findings inside the function of `frame`."""
        return [flag for flag in self.code if frame is not None and flag.frame == frame]

    def lockstep(self, evidence: Evidence) -> Lockstep | None:
        return lockstep(
            evidence, self.baseline.pool_timeout, self.pool.capacity_now, self.oldest_in_tx
        )

    @property
    def span_seconds(self) -> float:
        return self.trend.span_seconds if self.trend is not None else 0.0

    @property
    def pool_starved(self) -> bool:
        """Others wait for the pool meanwhile: pinned, callers waiting, or timeouts now."""
        pool = self.pool
        return pool.full_now or pool.waiting_now > 0 or self.baseline.timeouts_for is not None

    @property
    def undecided(self) -> bool:
        """Transactions unchanged across a window too short to judge them while the pool
        starves: a leak or a long wait, which only a longer window separates."""
        return (
            bool(self.frozen)
            and not self.held
            and self.pool_starved
            and self.more_seconds_to_decide() > 0
        )

    def more_seconds_to_decide(self) -> float:
        """Extra sampling after which a frozen transaction would be past the held age and the
        window long enough to see rotation."""
        need = self.baseline.rotation_window() - self.span_seconds
        if self.frozen and not self.held:
            need = max(need, self.baseline.held_after - self.frozen[0].age_seconds)
        return max(0.0, need)

    def describe_held(self) -> str:
        oldest = self.held[0]
        youngest = self.held[-1]
        return (
            f"{len(self.held)} transactions held idle and unchanged in all "
            f"{self.trend.samples if self.trend else 0} samples over "
            f"{format_duration(self.span_seconds)}, {format_duration(youngest.age_seconds)}-"
            f"{format_duration(oldest.age_seconds)} old: "
            f"{self.baseline.multiple(youngest.age_seconds)} (held after "
            f"{format_duration(self.baseline.held_after)}: {self.baseline.basis})"
            + (
                f", while waiters have been timing out for {format_duration(timing_out)}"
                if (timing_out := self.baseline.timeouts_for)
                else ""
            )
        )

    def as_evidence(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline.as_evidence(),
            "frozen_pids": [h.pid for h in self.frozen],
            "held_pids": [h.pid for h in self.held],
            "streaming_pids": [h.pid for h in self.streaming],
            "window_seconds": round(self.span_seconds, 2),
            "rotation_window_seconds": round(self.baseline.rotation_window(), 3),
            "code_paths": [p.as_evidence() for p in self.code_paths],
            "holder_code_paths": [p.as_evidence() for p in self.holder_paths],
        }


def _frozen_and_streaming(trend: SessionTrend) -> tuple[list[HeldSession], list[HeldSession]]:
    if not trend.multi_sample:
        return [], []
    first: dict[int, tuple[datetime | None, datetime | None]] = {}
    changed: set[int] = set()
    for _at, backends in trend.per_sample:
        for b in backends:
            if b.state not in IDLE_IN_TRANSACTION:
                continue
            if b.pid in first and first[b.pid] != (b.xact_start, b.state_change):
                changed.add(b.pid)
            first.setdefault(b.pid, (b.xact_start, b.state_change))
    frozen = [h for h in trend.persistent_in_tx if h.pid not in changed]
    streaming = [
        h
        for h in trend.persistent_in_tx
        if h.pid in changed and CURSOR_FETCH.match(h.backend.query or "")
    ]
    return frozen, streaming


def _oldest_in_tx(trend: SessionTrend | None) -> float:
    ages = [
        age
        for at, backends in (trend.per_sample if trend else ())
        for b in backends
        if b.state in IDLE_IN_TRANSACTION and (age := seconds_between(at, b.xact_start)) is not None
    ]
    return max(ages, default=0.0)


def gc_code_paths(
    evidence: Evidence, logged: list[LoggedException], window: MatchWindow
) -> list[CodePath]:
    """Exceptions logged just before the GC cleanups: the error path that dropped them."""
    cleanups = [
        m.at for log in evidence.logs if log.app is not None for m in log.app.moments
        if m.kind == MOMENT_GC_CLEANUP
    ]  # fmt: skip
    # An exception precedes the cleanup of the connection it dropped: look backwards.
    moments = [(index, at - timedelta(seconds=window.after)) for index, at in enumerate(cleanups)]
    paths = explain(moments, logged, window)
    return [p for p in paths if p.explains * 2 >= len(cleanups)]


def hold_reading(
    evidence: Evidence,
    pool: PoolSignal | None = None,
    trend: SessionTrend | None = None,
    timeouts: LogSignal | None = None,
) -> HoldReading:
    """The hold facts of `evidence`; pass the pool, trend and timeouts already read to reuse."""
    base = baseline(evidence, timeouts)
    trend = trend if trend is not None else session_trend(evidence)
    pool = pool if pool is not None else pool_signal(evidence)
    frozen, streaming = _frozen_and_streaming(trend) if trend is not None else ([], [])
    held = [h for h in frozen if h.age_seconds >= base.held_after]
    logged = exceptions(evidence)
    window = match_window(evidence, logged, base.typical_seconds)
    failed = failed_requests(evidence)
    paths = explain_with_requests([(h.pid, h.since) for h in held], logged, failed, window)
    held_checkouts = [
        (index, sample.at - timedelta(seconds=holder.age_seconds))
        for instance in pool.instances
        if instance.samples
        for sample in instance.samples[-1:]
        for index, holder in enumerate(sample.holders)
        if holder.age_seconds >= base.checkout_held_after
    ]
    return HoldReading(
        baseline=base,
        trend=trend,
        pool=pool,
        frozen=tuple(frozen),
        held=tuple(held),
        streaming=tuple(streaming),
        oldest_in_tx=_oldest_in_tx(trend),
        code_paths=tuple(paths),
        holder_paths=tuple(explain_with_requests(held_checkouts, logged, failed, window)),
        gc_paths=tuple(gc_code_paths(evidence, logged, window)),
        code=evidence.code,
        match_window=window,
    )
