"""The app's own baseline: how long its requests and checkouts take, its pool_timeout, and from
that, how long a connection may sit idle in a transaction before it counts as held."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pooldoctor.durations import format_duration
from pooldoctor.evidence import Evidence
from pooldoctor.readings.logs import POOL_TIMEOUT_EVENTS, LogSignal, log_now, read_logs
from pooldoctor.readings.pools import measure_throughput
from pooldoctor.readings.sessions import percentile
from pooldoctor.readings.thresholds import RECENT_SECONDS

# Held "many times" what a request takes: a web request that sits ten times its p99 idle in a
# transaction is not doing the app's ordinary work.
P99_MULTIPLE = 10.0
HOLD_MULTIPLE = 10.0  # the same against instrumented mean checkout hold time
# ... and for several pool_timeouts: waiters have given up more than once while it sat there.
POOL_TIMEOUT_MULTIPLE = 3.0
# With no request or checkout times, a transaction older than the run of pool timeouts is held;
# past a gateway timeout no web request legitimately holds a session, whatever else is known.
FALLBACK_HELD_SECONDS = 60.0
MIN_REQUESTS = 5  # fewer timed requests than this are no baseline
# Rotation is visible only over a window several typical holds long.
ROTATION_WINDOW_MULTIPLE = 3.0


@dataclass(frozen=True)
class Baseline:
    """What this app ordinarily does, and the held-too-long age derived from it."""

    request_p99: float | None
    requests: int
    hold_mean: float | None
    pool_timeout: float | None
    timeouts_for: float | None  # seconds between the first and last recent pool timeout
    held_after: float
    basis: str

    @property
    def typical_seconds(self) -> float | None:
        """How long one unit of the app's work takes: p99 request, else mean hold."""
        return self.request_p99 if self.request_p99 is not None else self.hold_mean

    @property
    def checkout_held_after(self) -> float:
        """The held age for checkouts by running threads. Without request or checkout times the
        run of pool timeouts says nothing of them (a slow statement outlasts it too, working),
        so only the gateway-timeout rule and 3x pool_timeout apply."""
        if self.typical_seconds is not None:
            return self.held_after
        return max(FALLBACK_HELD_SECONDS, POOL_TIMEOUT_MULTIPLE * (self.pool_timeout or 0.0))

    def rotation_window(self) -> float:
        """Seconds of sampling over which ordinary transactions must have rotated."""
        typical = self.typical_seconds
        if typical is None:
            return self.held_after
        return ROTATION_WINDOW_MULTIPLE * typical

    def multiple(self, age: float) -> str:
        """'870x the p99 request (15ms), 13x pool_timeout (1.0s)'."""
        parts = []
        if self.request_p99:
            parts.append(
                f"{age / self.request_p99:.0f}x the p99 request "
                f"({format_duration(self.request_p99)})"
            )
        elif self.hold_mean:
            parts.append(
                f"{age / self.hold_mean:.0f}x the mean checkout ({format_duration(self.hold_mean)})"
            )
        if self.pool_timeout:
            limit = format_duration(self.pool_timeout)
            parts.append(f"{age / self.pool_timeout:.0f}x pool_timeout ({limit})")
        return ", ".join(parts) or f"older than {format_duration(self.held_after)}"

    def as_evidence(self) -> dict[str, Any]:
        return {
            "request_p99_seconds": _round(self.request_p99),
            "timed_requests": self.requests,
            "checkout_hold_mean_seconds": _round(self.hold_mean),
            "pool_timeout_seconds": self.pool_timeout,
            "timeouts_for_seconds": _round(self.timeouts_for),
            "held_after_seconds": round(self.held_after, 3),
            "basis": self.basis,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def request_times(evidence: Evidence) -> list[float]:
    """Durations of the recent requests that did not fail (5xx are waits and errors)."""
    now = log_now(evidence)
    times = [
        request.seconds
        for log in evidence.logs
        if log.app is not None
        for request in log.app.requests
        if request.status < 500 and 0 <= (now - request.at).total_seconds() <= RECENT_SECONDS
    ]
    return times


def pool_timeout_of(evidence: Evidence) -> float | None:
    if evidence.config is not None and evidence.config.pool_timeout is not None:
        return evidence.config.pool_timeout
    timeouts = [s.timeout for i in evidence.pools for s in i.samples if s.timeout is not None]
    return timeouts[-1] if timeouts else None


def _without_work_times(
    pool_timeout: float | None, timeouts_for: float | None
) -> tuple[float, str]:
    """With no request or checkout times: a transaction unchanged since before waiters began
    timing out has not come back through the whole starvation; the gateway-timeout rule caps it
    (FALLBACK_HELD_SECONDS), and stands alone when waiters have not timed out for a
    pool_timeout yet."""
    if timeouts_for is not None and timeouts_for >= max(pool_timeout or 0.0, 1.0):
        held = min(FALLBACK_HELD_SECONDS, timeouts_for)
        capped = f" (capped at {format_duration(held)})" if held < timeouts_for else ""
        return held, (
            "no request or checkout times: older than the "
            f"{format_duration(timeouts_for)} waiters have been timing out{capped}"
        )
    return FALLBACK_HELD_SECONDS, (
        f"no request or checkout times, no run of pool timeouts: "
        f"at least {format_duration(FALLBACK_HELD_SECONDS)}"
    )


def baseline(evidence: Evidence, timeouts: LogSignal | None = None) -> Baseline:
    """The app's own timings; `timeouts` is the pool-timeout signal when already read."""
    times = request_times(evidence)
    p99 = percentile(times, 0.99) if len(times) >= MIN_REQUESTS else None
    throughput = measure_throughput(evidence)
    hold = throughput.hold_seconds if throughput is not None else None
    pool_timeout = pool_timeout_of(evidence)
    if timeouts is None:
        timeouts = read_logs(evidence).signal(*POOL_TIMEOUT_EVENTS)
    timeouts_for = (
        (timeouts.last - timeouts.first).total_seconds()
        if timeouts.current and timeouts.first and timeouts.last
        else None
    )
    limits: list[tuple[float, str]] = []
    if p99 is not None:
        limits.append((P99_MULTIPLE * p99, f"{P99_MULTIPLE:g}x p99 request {format_duration(p99)}"))
    elif hold is not None:
        limits.append(
            (HOLD_MULTIPLE * hold, f"{HOLD_MULTIPLE:g}x mean checkout {format_duration(hold)}")
        )
    if pool_timeout:
        limits.append(
            (
                POOL_TIMEOUT_MULTIPLE * pool_timeout,
                f"{POOL_TIMEOUT_MULTIPLE:g}x pool_timeout {format_duration(pool_timeout)}",
            )
        )
    if p99 is None and hold is None:
        limits.append(_without_work_times(pool_timeout, timeouts_for))
    held_after = max(limit for limit, _ in limits)
    basis = " and ".join(text for _, text in limits)
    return Baseline(p99, len(times), hold, pool_timeout, timeouts_for, held_after, basis)
