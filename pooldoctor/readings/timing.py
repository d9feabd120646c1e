"""Timing of log moments: bursts of pool timeouts, and cancellations lined up with leaks."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime
from statistics import median
from typing import Any

from pooldoctor.durations import format_duration
from pooldoctor.evidence import MOMENT_CANCELLATION, MOMENT_GC_CLEANUP, Evidence
from pooldoctor.readings.codepaths import exceptions, is_pool_timeout

BURST_GAP_FRACTION = 0.2  # timeouts closer than this share of pool_timeout are one burst
MIN_BURSTS = 3
# A cancellation lines up with a GC cleanup or a leaked checkout this close before it.
ALIGN_SECONDS = 2.0
MIN_ALIGNED = 3


@dataclass(frozen=True)
class TimeoutBursts:
    """Pool timeouts grouped into bursts; their sizes and the gaps between burst starts."""

    sizes: tuple[int, ...]
    gaps: tuple[float, ...]

    @property
    def median_gap(self) -> float | None:
        return median(self.gaps) if self.gaps else None

    @property
    def median_size(self) -> float:
        return median(self.sizes) if self.sizes else 0.0

    def as_evidence(self) -> dict[str, Any]:
        return {
            "bursts": len(self.sizes),
            "sizes": list(self.sizes[-10:]),
            "gaps_seconds": [round(g, 3) for g in self.gaps[-10:]],
        }


def timeout_bursts(evidence: Evidence, pool_timeout: float | None) -> TimeoutBursts:
    moments = [e.at for e in exceptions(evidence) if is_pool_timeout(e)]
    if not moments or not pool_timeout:
        return TimeoutBursts((), ())
    gap_limit = BURST_GAP_FRACTION * pool_timeout
    starts: list[datetime] = [moments[0]]
    sizes = [1]
    for previous, moment in itertools.pairwise(moments):
        if (moment - previous).total_seconds() <= gap_limit:
            sizes[-1] += 1
        else:
            starts.append(moment)
            sizes.append(1)
    gaps = tuple((b - a).total_seconds() for a, b in itertools.pairwise(starts))
    return TimeoutBursts(tuple(sizes), gaps)


@dataclass(frozen=True)
class Cancellations:
    """Cancellations and client disconnects in the app log, and how many line up in time
    with garbage-collector cleanups of connections."""

    cancellations: int
    gc_cleanups: int
    aligned: int
    examples: tuple[str, ...]

    @property
    def evidenced(self) -> bool:
        return self.aligned >= MIN_ALIGNED and self.aligned * 2 >= self.gc_cleanups

    def describe(self) -> str:
        return (
            f"{self.aligned} of {self.gc_cleanups} garbage-collector cleanups come within "
            f"{format_duration(ALIGN_SECONDS)} after a cancellation or client disconnect "
            f"({self.cancellations} in the log)"
        )

    def as_evidence(self) -> dict[str, Any]:
        return {
            "cancellations": self.cancellations,
            "gc_cleanups": self.gc_cleanups,
            "aligned": self.aligned,
            "align_seconds": ALIGN_SECONDS,
            "examples": list(self.examples),
        }


def cancellations(evidence: Evidence) -> Cancellations:
    moments = sorted(
        (m for log in evidence.logs if log.app is not None for m in log.app.moments),
        key=lambda m: m.at,
    )
    cancelled = [m for m in moments if m.kind == MOMENT_CANCELLATION]
    cleanups = [m for m in moments if m.kind == MOMENT_GC_CLEANUP]
    aligned = sum(
        any(0 <= (g.at - c.at).total_seconds() <= ALIGN_SECONDS for c in cancelled)
        for g in cleanups
    )
    return Cancellations(
        len(cancelled), len(cleanups), aligned, tuple(m.text[:160] for m in cancelled[:2])
    )


# Threads that hold a connection while waiting for another give up after pool_timeout, all
# together: transactions never outlive this multiple of it, and bursts come one pool_timeout apart.
LOCKSTEP_AGE_MULTIPLE = 1.5
BURST_PERIOD_RANGE = (0.8, 1.5)
LOCKSTEP_SIZE_SHARE = 0.5  # a burst times out at least half the pool's holders at once


@dataclass(frozen=True)
class Lockstep:
    """Every holder waits for a second connection: the pool pinned by transactions that end
    only when their own requests time out, in bursts one pool_timeout apart."""

    pool_timeout: float
    capacity: int
    oldest_in_tx: float
    bursts: TimeoutBursts
    nested_frames: tuple[str, ...]  # the timed-out checkout's app frames, outermost first

    def describe(self) -> str:
        gap = self.bursts.median_gap or 0.0
        text = (
            f"{len(self.bursts.sizes)} bursts of pool timeouts (median {self.bursts.median_size:g} "
            f"at once) {format_duration(gap)} apart, one pool_timeout "
            f"({format_duration(self.pool_timeout)}); the app's transactions never outlive it "
            f"(oldest {format_duration(self.oldest_in_tx)}) while the pool "
            f"stays at {self.capacity}"
        )
        if len(self.nested_frames) >= 2:
            text += (
                f"; the checkout that times out is nested: {self.nested_frames[-1]} called from "
                f"{self.nested_frames[-2]}"
            )
        return text

    def as_evidence(self) -> dict[str, Any]:
        return {
            "pool_timeout_seconds": self.pool_timeout,
            "capacity": self.capacity,
            "oldest_in_transaction_seconds": round(self.oldest_in_tx, 3),
            "timeout_bursts": self.bursts.as_evidence(),
            "timed_out_checkout_frames": list(self.nested_frames),
        }


def lockstep(
    evidence: Evidence, pool_timeout: float | None, capacity: int | None, oldest_in_tx: float
) -> Lockstep | None:
    """The threadpool-deadlock timing, or None when the evidence does not show it."""
    if not pool_timeout or not capacity or oldest_in_tx <= 0:
        return None
    if oldest_in_tx > LOCKSTEP_AGE_MULTIPLE * pool_timeout:
        return None
    bursts = timeout_bursts(evidence, pool_timeout)
    gap = bursts.median_gap
    low, high = BURST_PERIOD_RANGE
    if (
        len(bursts.sizes) < MIN_BURSTS
        or gap is None
        or not low * pool_timeout <= gap <= high * pool_timeout
        or bursts.median_size < LOCKSTEP_SIZE_SHARE * capacity
    ):
        return None
    frames = [e.app_frames for e in exceptions(evidence) if is_pool_timeout(e) and e.app_frames]
    nested = max(frames, key=len) if frames else ()
    return Lockstep(pool_timeout, capacity, oldest_in_tx, bursts, nested)
