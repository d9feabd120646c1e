"""The connection-leak signature: checkouts never returned, and what ties a leak to cancels."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pooldoctor.durations import format_duration
from pooldoctor.evidence import Holder
from pooldoctor.findings import Severity
from pooldoctor.readings.logs import LogSignal, examples_mention
from pooldoctor.readings.pools import CheckoutTimes, PoolSignal, describe_holders, group_holders
from pooldoctor.readings.sessions import (
    HeldSession,
    SessionTrend,
    describe_oldest,
    ratchets,
    sessions_evidence,
)
from pooldoctor.readings.streaming import is_streaming
from pooldoctor.readings.thresholds import STUCK_SECONDS

LEAK_MIN_AGE_SECONDS = STUCK_SECONDS  # persistent and this old: leaked, not slow
LEAK_SINGLE_SAMPLE_AGE_SECONDS = 600.0  # with one sample (no trend) only very old ones count
IDLE_LEAK_SHARE = 0.5  # plainly idle backends must explain half the checked-out pool
ASYNC_MARKERS = ("asyncpg", "adaptedconnection", "asyncio", "async ", "await", "anyio", "cancel")
# A checkout whose thread has finished can never be returned by the code that took it: leaked at
# any age. The floor skips a connection caught mid hand-off as its thread exits.
DEAD_THREAD_MIN_AGE_SECONDS = 1.0
DEAD_THREAD_CONFIDENCE = 0.8  # a fact reported by the app itself, not an inference from ages
# The server is sampled a moment after the app: a leaked transaction, begun after its checkout,
# is at most this much older than the checkout's reported age.
SESSION_MATCH_SLACK_SECONDS = 5.0


@dataclass(frozen=True)
class LeakSignature:
    """Everything that says connections are held and not returned."""

    confidence: float
    reasons: tuple[str, ...]
    stuck: tuple[HeldSession, ...]
    holder_rows: tuple[dict[str, Any], ...]
    pool: PoolSignal
    timeouts: LogSignal
    gc: LogSignal
    trend: SessionTrend | None
    current: bool
    extra: dict[str, Any] = field(default_factory=dict)
    orphaned: tuple[Holder, ...] = ()  # listed holders whose thread has finished
    orphaned_unlisted: int = 0  # more such checkouts the app counted beyond those it lists

    @property
    def orphaned_count(self) -> int:
        """Checkouts held by finished threads, listed or not (payload's holders_dead_threads)."""
        return len(self.orphaned) + self.orphaned_unlisted


def _stuck_sessions(trend: SessionTrend, pool: PoolSignal) -> list[HeldSession]:
    if trend.multi_sample:
        in_tx = [h for h in trend.persistent_in_tx if h.age_seconds >= LEAK_MIN_AGE_SECONDS]
        idle = [h for h in trend.persistent_idle if h.age_seconds >= LEAK_MIN_AGE_SECONDS]
    else:
        in_tx = [h for h in trend.idle_in_tx if h.age_seconds >= LEAK_SINGLE_SAMPLE_AGE_SECONDS]
        idle = []
    # Plainly idle backends look the same whether checked in or leaked: count only as many as
    # the pool says are checked out beyond what is running or in a transaction.
    if idle and pool.checked_out_now is not None and pool.full_now:
        unexplained = pool.checked_out_now - len(trend.active) - len(trend.idle_in_tx)
        idle = idle[: max(0, unexplained)]
        if len(idle) < IDLE_LEAK_SHARE * pool.checked_out_now:
            idle = []
    else:
        idle = []
    return sorted(in_tx + idle, key=lambda h: -h.age_seconds)


def is_orphaned(holder: Holder) -> bool:
    """Held by a thread that has finished (and past the hand-off floor): leaked at any age."""
    return holder.thread_alive is False and holder.age_seconds >= DEAD_THREAD_MIN_AGE_SECONDS


def orphaned_sessions(trend: SessionTrend, orphaned: Sequence[Holder]) -> list[HeldSession]:
    """The backends of checkouts held by finished threads, at most one each: the app's
    transactions open and unchanged in every sample, no older than the oldest such checkout."""
    if not orphaned or not trend.multi_sample:
        return []
    oldest = max(h.age_seconds for h in orphaned) + SESSION_MATCH_SLACK_SECONDS
    matching = [
        h for h in trend.persistent_in_tx if DEAD_THREAD_MIN_AGE_SECONDS <= h.age_seconds <= oldest
    ]
    return matching[: len(orphaned)]


def orphaned_pids(trend: SessionTrend, pool: PoolSignal) -> set[int]:
    """pids of the app's backends that checkouts held by finished threads account for."""
    return {h.pid for h in orphaned_sessions(trend, [h for h in pool.holders if is_orphaned(h)])}


def describe_orphaned(orphaned: Sequence[Holder], unlisted: int = 0) -> str:
    """'3 connections held by threads that have already finished: app/orders.py:42 in
    create_order (oldest 12s)', naming the top origins; `unlisted` more were only counted."""
    total = len(orphaned) + unlisted
    noun = "connection" if total == 1 else "connections"
    if not orphaned:
        return f"{total} {noun} held by threads that have already finished (counted by the app)"
    rows = group_holders(orphaned)

    def origin(row: dict[str, Any]) -> str:
        count = f" holds {row['count']}" if len(rows) > 1 else ""
        return f"{row['origin']}{count} (oldest {format_duration(row['oldest_seconds'])})"

    origins = ", ".join(origin(row) for row in rows[:3])
    more = f", and {len(rows) - 3} more origins" if len(rows) > 3 else ""
    if unlisted:
        more += f", and {unlisted} more beyond the holders the app lists"
    return f"{total} {noun} held by threads that have already finished: {origins}{more}"


def _leaked_holders(holders: Iterable[Holder]) -> tuple[list[Holder], list[Holder]]:
    """(held by finished threads, held past LEAK_MIN_AGE_SECONDS by running or unknown ones)."""
    orphaned: list[Holder] = []
    aged: list[Holder] = []
    for holder in holders:
        if is_orphaned(holder):
            orphaned.append(holder)
        elif holder.age_seconds >= LEAK_MIN_AGE_SECONDS:
            aged.append(holder)
    return orphaned, aged


def leak_signature(
    pool: PoolSignal,
    timeouts: LogSignal,
    gc: LogSignal,
    trend: SessionTrend | None,
    times: CheckoutTimes | None = None,
) -> LeakSignature | None:
    """Connections held and not returned: finished threads, persistent sessions, old holders."""
    # Holders inside streaming responses are explained by the streams (streaming-holds-session).
    holders = [h for h in pool.holders if not is_streaming(h)]
    orphaned, aged = _leaked_holders(holders)
    stuck = _stuck_sessions(trend, pool) if trend is not None else []
    if trend is not None:
        pids = {h.pid for h in stuck}
        stuck += [h for h in orphaned_sessions(trend, orphaned) if h.pid not in pids]
        stuck.sort(key=lambda h: -h.age_seconds)
    holder_rows = group_holders(orphaned + aged)
    reasons: list[str] = []
    confidence = 0.0
    unlisted = pool.unlisted_dead_threads
    if orphaned or unlisted:
        confidence = DEAD_THREAD_CONFIDENCE
        reasons.append(describe_orphaned(orphaned, unlisted))
    if stuck and trend is not None:
        confidence = max(confidence, 0.55 if trend.multi_sample else 0.35)
        in_tx = sum(1 for h in stuck if h.backend.state != "idle")
        kind = "idle in transaction" if in_tx == len(stuck) else "idle or idle in transaction"
        same = (
            f"no progress in their transactions across all {trend.samples} samples"
            if trend.multi_sample
            else "single sample"
        )
        reasons.append(
            f"{len(stuck)} backends of {trend.app.label} {kind}, {describe_oldest(stuck)}, {same}"
        )
    if aged:
        confidence = max(confidence, 0.45) + 0.2
        reasons.append(
            f"pool holders older than {format_duration(LEAK_MIN_AGE_SECONDS)}: "
            f"{describe_holders(group_holders(aged))}"
        )
    if times is not None and (times.mean_use_seconds or 0.0) >= LEAK_MIN_AGE_SECONDS:
        confidence = max(confidence, 0.45) + 0.1
        reasons.append(f"connections are used far longer than requests last: {times.describe()}")
    if gc.current:
        confidence = max(confidence, 0.5) + 0.2
        reasons.append(gc.describe("garbage-collector cleanups of non-checked-in connections"))
    if confidence == 0.0:
        if gc.seen:
            return LeakSignature(
                0.3 * gc.weight,
                (gc.describe("garbage-collector connection cleanups"),),
                (),
                (),
                pool,
                timeouts,
                gc,
                trend,
                current=False,
            )
        return None
    series = [
        [c for s in instance.samples if (c := s.in_use) is not None] for instance in pool.instances
    ]
    if pool.full_always and pool.samples >= 2:
        confidence += 0.15
        reasons.append(f"pool at capacity in all {pool.samples} samples")
    elif any(ratchets(values) for values in series):
        confidence += 0.15
        reasons.append("checked_out ratchets up between samples")
    if timeouts.current:
        confidence += 0.05
        reasons.append(timeouts.describe("QueuePool timeouts"))
    return LeakSignature(
        min(confidence, 0.97),
        tuple(reasons),
        tuple(stuck),
        tuple(holder_rows),
        pool,
        timeouts,
        gc,
        trend,
        current=True,
        orphaned=tuple(orphaned),
        orphaned_unlisted=unlisted,
    )


def leak_severity(signature: LeakSignature) -> Severity:
    if not signature.current:
        return Severity.INFO
    if signature.pool.full_now or signature.timeouts.current or signature.pool.waiting_now:
        return Severity.CRITICAL
    return Severity.WARNING


def leak_evidence(signature: LeakSignature) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "pool": signature.pool.as_evidence(),
        "stuck_backends": sessions_evidence(signature.stuck),
        "stuck_pids": [h.pid for h in signature.stuck],
        "holders": list(signature.holder_rows),
        "holders_threads_finished": signature.orphaned_count,
        "pool_timeouts": signature.timeouts.as_evidence(),
        "gc_cleanups": signature.gc.as_evidence(),
        **signature.extra,
    }
    if signature.trend is not None:
        facts["app"] = signature.trend.app.as_evidence()
        facts["samples"] = signature.trend.samples
    return facts


def cancellation_hints(signature: LeakSignature, eof: LogSignal) -> list[str]:
    """Why the leak looks tied to cancelled async work (`eof`: client disconnects in a
    transaction); empty when nothing says so."""
    hints: list[str] = []
    if eof.current:
        hints.append(eof.describe("client disconnects with an open transaction"))
    if examples_mention(signature.gc, *ASYNC_MARKERS):
        hints.append("the garbage collector cleans up async driver connections")
    async_holders = [
        row
        for row in signature.holder_rows
        if any(m in str(row["origin"]).lower() for m in ASYNC_MARKERS)
    ]
    if async_holders:
        hints.append(
            f"{sum(r['count'] for r in async_holders)} held connections come from "
            f"async code ({async_holders[0]['origin']})"
        )
    return hints


def leaked_pids(trend: SessionTrend, pool: PoolSignal) -> frozenset[int]:
    """pids the leak reading claims: transactions persistent past LEAK_MIN_AGE_SECONDS (with one
    sample: older than LEAK_SINGLE_SAMPLE_AGE_SECONDS) and the sessions of checkouts whose thread
    has finished. Idle-in-transaction leaves them to the leak."""
    if trend.multi_sample:
        held = {h.pid for h in trend.persistent_in_tx if h.age_seconds >= LEAK_MIN_AGE_SECONDS}
    else:
        held = {h.pid for h in trend.idle_in_tx if h.age_seconds >= LEAK_SINGLE_SAMPLE_AGE_SECONDS}
    return frozenset(held | orphaned_pids(trend, pool))
