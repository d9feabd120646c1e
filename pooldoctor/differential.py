"""Differential diagnosis of findings[0]: the look-alikes considered, why each lost, with the
numbers; and, when the runner-up is too close, how much more sampling would separate them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pooldoctor.durations import format_duration
from pooldoctor.findings import Finding, Role, Severity
from pooldoctor.readings import Readings
from pooldoctor.readings.holds import HoldReading
from pooldoctor.readings.sessions import seconds_between
from pooldoctor.runbooks import RunbookError, UnknownRunbook, get_runbook

CLOSE_MARGIN = 0.1
# Causes a too-short window cannot tell apart when open transactions stay unchanged.
UNDECIDED_PAIRS = {
    "idle-in-transaction": "connection-leak",
    "connection-leak": "idle-in-transaction",
}  # a runner-up this close in confidence is not ruled out by this window
MIN_EXTRA_SECONDS = 1.0

LOOK_ALIKES: dict[str, tuple[str, ...]] = {
    "connection-leak": (
        "idle-in-transaction", "pool-undersized", "slow-queries", "streaming-holds-session",
        "threadpool-deadlock", "async-cancellation-leak",
    ),
    "async-cancellation-leak": ("connection-leak", "idle-in-transaction"),
    "idle-in-transaction": (
        "connection-leak", "streaming-holds-session", "threadpool-deadlock", "pool-undersized",
    ),
    "streaming-holds-session": ("idle-in-transaction", "connection-leak", "slow-queries"),
    "threadpool-deadlock": ("idle-in-transaction", "pool-undersized", "connection-leak"),
    "pool-undersized": (
        "connection-leak", "slow-queries", "idle-in-transaction", "threadpool-deadlock",
    ),
    "slow-queries": ("pool-undersized", "lock-contention", "connection-leak"),
    "lock-contention": ("slow-queries", "idle-in-transaction", "connection-leak"),
}  # fmt: skip


@dataclass(frozen=True)
class LookAlike:
    """One alternative to findings[0] and why it lost (or did not clearly lose)."""

    runbook: str
    verdict: str  # "ruled out" | "close"
    confidence: float | None  # its own finding's confidence, None when no finding
    reason: str
    title: str = ""  # the runbook's title in plain words: "Idle in transaction"


@dataclass(frozen=True)
class Differential:
    """The look-alikes of findings[0]; `close_call` when the window cannot decide."""

    top: str
    considered: tuple[LookAlike, ...]
    close_call: str | None = None
    more_seconds: float | None = None

    def as_plain(self) -> dict[str, Any]:
        return {
            "for": self.top,
            "considered": [
                {
                    "runbook": a.runbook,
                    "title": a.title or a.runbook,
                    "verdict": a.verdict,
                    "confidence": a.confidence,
                    "reason": a.reason,
                }
                for a in self.considered
            ],
            "close_call": self.close_call,
            "more_seconds": self.more_seconds,
        }


def _rotation(r: HoldReading, _readings: Readings) -> str:
    trend = r.trend
    if trend is None:
        return "no pg_stat_activity samples to see rotation"
    in_tx = len(trend.idle_in_tx)
    typical = r.baseline.typical_seconds
    pace = f" while requests take {format_duration(typical)} (p99)" if typical is not None else ""
    text = (
        f"{trend.rotated_in_tx} transactions rotated and {len(r.frozen)} of {in_tx} idle in "
        f"transaction stayed unchanged over {format_duration(r.span_seconds)}{pace}"
    )
    if r.streaming:
        text += f"; {len(r.streaming)} are cursors streaming"
    return text


def _held(r: HoldReading, _readings: Readings) -> str:
    if r.held:
        return r.describe_held()
    return (
        f"no transaction held unchanged past {format_duration(r.baseline.held_after)} "
        f"({r.baseline.basis}); {len(r.frozen)} unchanged across the samples"
    )


def _undersized(r: HoldReading, readings: Readings) -> str:
    pool = r.pool
    if not pool.has_data:
        return "no pool-status samples"
    text = f"pool at capacity in {pool.full_samples}/{pool.samples} samples"
    if pool.full_always and r.held:
        text += f", pinned by {len(r.held)} held transactions, not by demand"
    elif r.streaming:
        text += f", pinned by {len(r.streaming)} streaming transactions, not by short queries"
    elif (longest := _longest_statement(r)) is not None and longest > (
        r.baseline.pool_timeout or r.baseline.held_after
    ):
        text += (
            f", held by statements running up to {format_duration(longest)} "
            f"({r.baseline.multiple(longest)}): waiters give up before one finishes, so service "
            "time, not demand, fills it"
        )
    elif readings.lockstep is not None:
        text += (
            ", but every burst of timeouts ends the holders' own transactions: they wait on the "
            "pool for a second connection, more capacity per thread would only move the limit"
        )
    return text


def _longest_statement(r: HoldReading) -> float | None:
    """Age of the app's longest running statement that is not waiting on a lock."""
    trend = r.trend
    if trend is None:
        return None
    ages = [
        age
        for b in trend.active
        if b.wait_event_type != "Lock"
        and (age := seconds_between(trend.latest_at, b.query_start)) is not None
    ]
    return max(ages, default=None)


def _slow(r: HoldReading, _readings: Readings) -> str:
    trend = r.trend
    if trend is None:
        return "no pg_stat_activity samples"
    locked = sum(1 for b in trend.active if b.wait_event_type == "Lock")
    longest = _longest_statement(r)
    text = f"{len(trend.active)} of {len(trend.latest)} app backends running a statement"
    if locked:
        text += f", {locked} of them waiting on a lock, not running"
    if longest is not None:
        text += f"; longest running statement {format_duration(longest)}"
    return text


def _streaming(r: HoldReading, _readings: Readings) -> str:
    if not r.streaming:
        return "no open transaction fetched from a server-side cursor between samples"
    return f"{len(r.streaming)} open transactions fetched from a server-side cursor between samples"


def _deadlock(r: HoldReading, readings: Readings) -> str:
    timing = readings.lockstep
    if timing is not None:
        return timing.describe()
    limit = r.baseline.pool_timeout
    if limit and r.oldest_in_tx > limit:
        return (
            f"the oldest transaction has been open {format_duration(r.oldest_in_tx)}, longer than "
            f"pool_timeout ({format_duration(limit)}): its holder is not waiting for a second "
            "connection, which would have timed out by now"
        )
    return "no bursts of pool timeouts one pool_timeout apart"


def _cancellation(_r: HoldReading, readings: Readings) -> str:
    lined_up = readings.lined_up
    if lined_up.gc_cleanups == 0:
        return (
            "the log has no garbage-collector cleanups of checked-out connections "
            f"({lined_up.cancellations} cancellations or client disconnects)"
        )
    return lined_up.describe()


def _locks(r: HoldReading, _readings: Readings) -> str:
    trend = r.trend
    if trend is None:
        return "no pg_stat_activity samples"
    blocked = sum(1 for b in trend.latest if b.wait_event_type == "Lock")
    return f"{blocked} app backends wait on a lock"


REASONS: dict[str, Callable[[HoldReading, Readings], str]] = {
    "idle-in-transaction": _rotation,
    "connection-leak": _held,
    "pool-undersized": _undersized,
    "slow-queries": _slow,
    "streaming-holds-session": _streaming,
    "threadpool-deadlock": _deadlock,
    "async-cancellation-leak": _cancellation,
    "lock-contention": _locks,
}


def _title(runbook: str) -> str:
    try:
        return get_runbook(runbook).title or runbook
    except (UnknownRunbook, RunbookError):
        return runbook


def _best(findings: Sequence[Finding], runbook: str) -> Finding | None:
    return next(
        (
            f
            for f in findings
            if f.runbook == runbook and f.role is Role.CAUSE and f.severity is not Severity.INFO
        ),
        None,
    )


def differential(readings: Readings, ranked: Sequence[Finding]) -> Differential | None:
    """For findings[0] (a current cause), each look-alike with the numbers that rule it out."""
    if not ranked or ranked[0].role is not Role.CAUSE or ranked[0].severity is Severity.INFO:
        return None
    top = ranked[0]
    reading = readings.holds
    considered: list[LookAlike] = []
    close: LookAlike | None = None
    for runbook in LOOK_ALIKES.get(top.runbook, ()):
        rival = _best(ranked[1:], runbook)
        reason = REASONS[runbook](reading, readings)
        near = rival is not None and top.confidence - rival.confidence <= CLOSE_MARGIN
        if rival is not None:
            reason = (
                f"its own finding scores {rival.confidence:.2f} against {top.confidence:.2f}; "
                f"{reason}"
            )
        entry = LookAlike(
            runbook,
            "close" if near else "ruled out",
            rival.confidence if rival else None,
            reason,
            _title(runbook),
        )
        considered.append(entry)
        if near and close is None:
            close = entry
    rival_runbook = close.runbook if close is not None else UNDECIDED_PAIRS.get(top.runbook)
    if rival_runbook is None or (close is None and not reading.undecided):
        return Differential(top.runbook, tuple(considered))
    extra = max(MIN_EXTRA_SECONDS, reading.more_seconds_to_decide())
    versus = (
        f" (confidence {top.confidence:.2f} vs {close.confidence:.2f})"
        if close is not None and close.confidence is not None
        else f": {len(reading.frozen)} transactions stayed unchanged over "
        f"{format_duration(reading.span_seconds)}, younger than the held age "
        f"{format_duration(reading.baseline.held_after)} ({reading.baseline.basis})"
    )
    note = (
        f"This window cannot decide between {top.runbook} and {rival_runbook}{versus}. Sample "
        f"about {format_duration(extra)} longer (raise --samples or --interval) to see whether "
        "the open transactions rotate or stay put past the app's baseline."
    )
    return Differential(top.runbook, tuple(considered), note, round(extra, 1))
