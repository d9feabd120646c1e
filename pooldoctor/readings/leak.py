"""The connection-leak signature: checkouts never returned, and what ties a leak to cancels."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pooldoctor.durations import format_duration
from pooldoctor.evidence import Holder
from pooldoctor.findings import Severity
from pooldoctor.readings.codepaths import describe_flags
from pooldoctor.readings.holds import HoldReading
from pooldoctor.readings.logs import LogSignal
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
from pooldoctor.readings.timing import Cancellations

LEAK_MIN_AGE_SECONDS = STUCK_SECONDS  # persistent and this old: leaked, not slow
LEAK_SINGLE_SAMPLE_AGE_SECONDS = 600.0  # with one sample (no trend) only very old ones count
IDLE_LEAK_SHARE = 0.5  # plainly idle backends must explain half the checked-out pool
HELD_CONFIDENCE = 0.1  # held past the app's own baseline, with the multiple shown
CODE_PATH_CONFIDENCE = 0.1  # an exception logged at the moment each stuck transaction began
HOLDER_PATH_CONFIDENCE = 0.05  # the same for instrumented holders' checkouts
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


def _stuck_sessions(trend: SessionTrend, pool: PoolSignal, holds: HoldReading) -> list[HeldSession]:
    if trend.multi_sample:
        # Held idle in transaction, unchanged in every sample, past the app's own baseline
        # while others starve for the pool; or past LEAK_MIN_AGE_SECONDS whatever the baseline.
        in_tx = list(holds.held) if holds.pool_starved else []
        claimed = {h.pid for h in in_tx} | {h.pid for h in holds.streaming}
        in_tx += [
            h
            for h in trend.persistent_in_tx
            if h.age_seconds >= LEAK_MIN_AGE_SECONDS and h.pid not in claimed
        ]
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


def _leaked_holders(
    holders: Iterable[Holder], holds: HoldReading
) -> tuple[list[Holder], list[Holder]]:
    """(held by finished threads, held by running or unknown ones past LEAK_MIN_AGE_SECONDS, or
    past the app's own held age while others starve for the pool)."""
    limit = LEAK_MIN_AGE_SECONDS
    if holds.pool_starved:
        limit = min(limit, holds.baseline.checkout_held_after)
    orphaned: list[Holder] = []
    aged: list[Holder] = []
    for holder in holders:
        if is_orphaned(holder):
            orphaned.append(holder)
        elif holder.age_seconds >= limit:
            aged.append(holder)
    return orphaned, aged


def _code_path_reasons(
    holds: HoldReading, stuck: Sequence[HeldSession], extra: dict[str, Any]
) -> tuple[list[str], float]:
    """The exceptions that opened the stuck transactions or took the held checkouts, and the
    scan findings in their functions; with the confidence they add."""
    reasons: list[str] = []
    added = 0.0
    paths = [p for p in holds.code_paths if p.explains]
    if paths and stuck:
        added += CODE_PATH_CONFIDENCE
        lag = max(abs(value) for p in paths[:2] for value in p.lag_ms)
        reasons.append(
            "opened by the request that failed with "
            + "; ".join(p.describe() for p in paths[:2])
            + f", logged within {format_duration(lag / 1000)} of each xact_start"
        )
        if holds.match_window is not None:
            extra["code_path_window"] = holds.match_window.as_evidence()
        flags = holds.scan_flags(paths[0].app_frame)
        if flags:
            reasons.append(describe_flags(flags))
            extra["scan_flags"] = [f"{f.path}:{f.line} {f.rule_id}" for f in flags]
    if holds.holder_paths:
        added += HOLDER_PATH_CONFIDENCE
        reasons.append(
            "checked out by requests that then failed with "
            + "; ".join(p.describe() for p in holds.holder_paths[:2])
            + " (explains counts the held checkouts)"
        )
    return reasons, added


def leak_signature(
    pool: PoolSignal,
    timeouts: LogSignal,
    gc: LogSignal,
    trend: SessionTrend | None,
    holds: HoldReading,
    times: CheckoutTimes | None = None,
) -> LeakSignature | None:
    """Connections held and not returned: finished threads, transactions held past the app's
    baseline (named by the exceptions that opened them), old holders, GC cleanups."""
    # Holders inside streaming responses are explained by the streams (streaming-holds-session).
    holders = [h for h in pool.holders if not is_streaming(h)]
    orphaned, aged = _leaked_holders(holders, holds)
    stuck = _stuck_sessions(trend, pool, holds) if trend is not None else []
    if trend is not None:
        pids = {h.pid for h in stuck}
        stuck += [h for h in orphaned_sessions(trend, orphaned) if h.pid not in pids]
        stuck.sort(key=lambda h: -h.age_seconds)
    holder_rows = group_holders(orphaned + aged)
    extra: dict[str, Any] = {"holds": holds.as_evidence()}
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
        if trend.app.by_pool_evidence:
            reasons.append(f"{trend.app.label} is the app because {trend.app.reason}")
        if holds.held:
            confidence += HELD_CONFIDENCE
            reasons.append(holds.describe_held())
    path_reasons, added = _code_path_reasons(holds, stuck, extra)
    confidence += added if confidence else 0.0
    reasons += path_reasons
    for row in holder_rows[:3]:
        flags = holds.scan_flags(str(row["origin"]))
        if flags:
            row["scan"] = [f"{f.path}:{f.line} {f.rule_id}" for f in flags]
            reasons.append(f"holder origin {row['origin']}: {describe_flags(flags)}")
    if aged:
        confidence = max(confidence, 0.45) + 0.2
        youngest = min(h.age_seconds for h in aged)
        reasons.append(
            f"pool holders held {format_duration(youngest)} or more by running threads "
            f"({holds.baseline.multiple(youngest)}): {describe_holders(group_holders(aged))}"
        )
    if times is not None and (times.mean_use_seconds or 0.0) >= LEAK_MIN_AGE_SECONDS:
        confidence = max(confidence, 0.45) + 0.1
        reasons.append(f"connections are used far longer than requests last: {times.describe()}")
    if gc.current:
        confidence = max(confidence, 0.5) + 0.2
        reasons.append(gc.describe("garbage-collector cleanups of non-checked-in connections"))
        if holds.gc_paths:
            confidence += CODE_PATH_CONFIDENCE
            reasons.append(
                "the cleaned-up connections were dropped by requests that failed with "
                + "; ".join(p.describe() for p in holds.gc_paths[:2])
            )
            extra["gc_code_paths"] = [p.as_evidence() for p in holds.gc_paths[:3]]
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
        extra=extra,
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


def cancellation_hints(lined_up: Cancellations, eof: LogSignal) -> list[str]:
    """Evidence that cancelled async work leaked the connections: cancellations or client
    disconnects lining up in time with the GC cleanups (`eof`: client disconnects in a
    transaction, counted only alongside them); empty when nothing shows a cancellation."""
    if not lined_up.evidenced:
        return []
    hints = [lined_up.describe()]
    if eof.current:
        hints.append(eof.describe("client disconnects with an open transaction"))
    return hints


def leaked_pids(trend: SessionTrend, pool: PoolSignal, holds: HoldReading) -> frozenset[int]:
    """pids the leak reading claims: transactions persistent past LEAK_MIN_AGE_SECONDS or held
    past the app's own baseline while the pool starves (with one sample: older than
    LEAK_SINGLE_SAMPLE_AGE_SECONDS) and the sessions of checkouts whose thread has finished.
    Idle-in-transaction leaves them to the leak."""
    if trend.multi_sample:
        held = {h.pid for h in trend.persistent_in_tx if h.age_seconds >= LEAK_MIN_AGE_SECONDS}
        if holds.pool_starved:
            held |= {h.pid for h in holds.held}
    else:
        held = {h.pid for h in trend.idle_in_tx if h.age_seconds >= LEAK_SINGLE_SAMPLE_AGE_SECONDS}
    return frozenset(held | orphaned_pids(trend, pool))
