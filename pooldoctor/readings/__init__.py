"""Readings: every fact derived from the evidence that more than one place needs, built once.

Checks and the report read the same `Readings`, so a pool is "full", a duration reads, a query is
previewed and a threshold is applied the same way everywhere. One module per family of facts:
app (identity), pools (fill per instance, holders, throughput), sessions (trend), locks
(chains, root blockers), stuck (work in progress at collection, root blockers whatever their
age or owner), logs (every event kind with its recency), settings, budget (configuration,
counted with the app's identity), leak / deadlock / streaming (signatures), visibility (what was
hidden), text and thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from pooldoctor.evidence import ActivitySample, Evidence, LogEvent
from pooldoctor.readings.app import AppIdentity, app_identity, configured_app_name
from pooldoctor.readings.budget import ServerBudget, server_budget
from pooldoctor.readings.deadlock import (
    DeadlockSignature,
    deadlock_signature,
    lockstep_signature,
)
from pooldoctor.readings.holds import HoldReading, hold_reading
from pooldoctor.readings.leak import (
    LeakSignature,
    cancellation_hints,
    leak_signature,
    leaked_pids,
)
from pooldoctor.readings.locks import LockReading, read_locks
from pooldoctor.readings.logs import POOL_TIMEOUT_EVENTS, LogReadings, LogSignal, read_logs
from pooldoctor.readings.pools import (
    CheckoutTimes,
    PoolSignal,
    Throughput,
    checkout_times,
    measure_throughput,
    pool_signal,
)
from pooldoctor.readings.sessions import (
    SessionTrend,
    idle_tx_timeout_suggestion,
    legitimate_idle_tx_ages,
    session_trend,
)
from pooldoctor.readings.settings import setting_int, setting_seconds
from pooldoctor.readings.stuck import StuckReading, latest_activity, read_stuck
from pooldoctor.readings.timing import Cancellations, Lockstep, cancellations
from pooldoctor.readings.visibility import Visibility, read_visibility


@dataclass(frozen=True)
class Readings:
    """The derived facts of one Evidence; build with `read(evidence)`."""

    evidence: Evidence
    app: AppIdentity | None
    label: str  # the app's short name in finding ids: application_name, role, configured name, host
    pool: PoolSignal
    sessions: SessionTrend | None
    throughput: Throughput | None
    logs: LogReadings  # every logged event kind with its recency, read once
    checkout_times: CheckoutTimes | None  # mean wait / use from the pool's histograms
    pool_timeouts: LogSignal
    leak: LeakSignature | None
    deadlock: DeadlockSignature | None
    cancellation: tuple[str, ...]  # cancellations lined up in time with the leak, described
    leaked_pids: frozenset[int]  # sessions the leak claims; idle-in-transaction leaves them
    longest_legitimate_idle_tx: float | None  # seconds, of sessions the leak does not claim
    idle_tx_timeout: int  # the one idle_in_transaction_session_timeout every finding suggests
    holds: HoldReading  # transactions judged against the app's own baseline, and their code paths
    lined_up: Cancellations  # cancellations and GC cleanups of connections, and how they line up
    lockstep: Lockstep | None  # timeout bursts one pool_timeout apart that end every transaction
    budget: ServerBudget | None  # server slots left for the app's own sessions, with its demand
    visibility: Visibility  # sessions hidden from pooldoctor's role: counts are lower bounds
    activity: ActivitySample | None  # the latest pg_stat_activity snapshot: the server now
    locks: LockReading  # lock waits and their root blockers, per sample
    stuck: StuckReading  # work still in progress at collection, root blockers always included

    def log(self, *events: LogEvent, matching: tuple[str, ...] = ()) -> LogSignal:
        """Occurrences of `events` over all log files, with their recency."""
        return self.logs.signal(*events, matching=matching)

    def setting_seconds(self, name: str) -> float | None:
        """A server timeout setting in seconds (0 = disabled), None when not collected."""
        return setting_seconds(self.evidence.postgres, name)

    def setting_int(self, name: str) -> int | None:
        """A whole-number server setting, None when not collected or unreadable."""
        return setting_int(self.evidence.postgres, name)

    @property
    def idle_tx_timeout_missing(self) -> bool:
        """The server has no idle_in_transaction_session_timeout (0), as far as was collected."""
        return not self.setting_seconds("idle_in_transaction_session_timeout")


def app_label(evidence: Evidence, app: AppIdentity | None) -> str:
    """Short name of the app: its application_name or role as seen in pg_stat_activity, else the
    application_name its configuration sets, else its first pool endpoint's host."""
    if app is not None:
        return app.short
    if configured := configured_app_name(evidence):
        return configured
    for instance in evidence.pools:
        return urlsplit(instance.url).netloc or instance.url
    return "app"


def read(evidence: Evidence) -> Readings:
    """Derive every shared fact of `evidence` once."""
    app = app_identity(evidence)
    pool = pool_signal(evidence)
    trend = session_trend(evidence)
    logs = read_logs(evidence)
    timeouts = logs.signal(*POOL_TIMEOUT_EVENTS)
    holds = hold_reading(evidence, pool, trend, timeouts)
    times = checkout_times(evidence)
    gc = logs.signal(LogEvent.GC_CLEANUP)
    leak = leak_signature(pool, timeouts, gc, trend, holds, times)
    eof = logs.signal(LogEvent.CLIENT_EOF_IN_TRANSACTION)
    lined_up = cancellations(evidence)
    lockstep = holds.lockstep(evidence)
    leaked = leaked_pids(trend, pool, holds) if trend is not None else frozenset()
    ages = legitimate_idle_tx_ages(trend, leaked) if trend is not None else []
    activity = latest_activity(evidence.postgres)
    locks = read_locks(evidence.postgres)
    return Readings(
        evidence=evidence,
        app=app,
        label=app_label(evidence, app),
        pool=pool,
        sessions=trend,
        throughput=measure_throughput(evidence),
        logs=logs,
        checkout_times=times,
        pool_timeouts=timeouts,
        leak=leak,
        deadlock=deadlock_signature(evidence, pool, timeouts, trend)
        or lockstep_signature(lockstep, holds),
        cancellation=tuple(cancellation_hints(lined_up, eof)) if leak is not None else (),
        leaked_pids=leaked,
        longest_legitimate_idle_tx=max(ages, default=None),
        idle_tx_timeout=idle_tx_timeout_suggestion(ages),
        budget=server_budget(evidence, app),
        holds=holds,
        lined_up=lined_up,
        lockstep=lockstep,
        visibility=read_visibility(evidence.postgres, app),
        activity=activity,
        locks=locks,
        stuck=read_stuck(activity, locks, evidence.pools, leaked),
    )
