"""lock-contention: the app's sessions queue behind a lock holder; name the root blocker."""

from __future__ import annotations

from typing import Any

from pooldoctor.checks.common import (
    MAX_CONFIDENCE,
    alter_role,
    backend_calls,
    finding,
    log_finding,
)
from pooldoctor.checks.spec import CheckSpec
from pooldoctor.durations import format_duration
from pooldoctor.evidence import ActivitySample, LogEvent
from pooldoctor.findings import Finding, Severity
from pooldoctor.readings import Readings
from pooldoctor.readings.app import (
    IDLE_IN_TRANSACTION,
    AppIdentity,
    is_maintenance,
)
from pooldoctor.readings.locks import PREPARED_XACT_PID, wait_began
from pooldoctor.readings.logs import POOL_TIMEOUT_EVENTS
from pooldoctor.readings.sessions import seconds_between
from pooldoctor.readings.text import preview
from pooldoctor.readings.thresholds import MAX_LISTED

CHECK = "lock-contention"
LOCK_CRITICAL_WAITERS = 3  # this many app sessions stuck behind one lock stalls the pool
SUGGESTED_LOCK_TIMEOUT = 5  # seconds: DDL and maintenance give up instead of queueing the app
LOGS_ONLY_CONFIDENCE = 0.45  # logged lock trouble, but no session was caught waiting


def _describe_root(pid: int, sample: ActivitySample, app: AppIdentity | None) -> dict[str, Any]:
    if pid == PREPARED_XACT_PID:
        return {"pid": 0, "kind": "prepared transaction"}
    blocker = next((b for b in sample.backends if b.pid == pid), None)
    if blocker is None:
        return {"pid": pid, "kind": "not visible to pooldoctor's role"}
    owner = (
        "the app"
        if app is not None and app.matches(blocker)
        else ("maintenance" if is_maintenance(blocker) else "another client")
    )
    return {
        "pid": pid,
        "kind": owner,
        "application_name": blocker.application_name,
        "usename": blocker.usename,
        "state": blocker.state,
        "xact_seconds": seconds_between(sample.at, blocker.xact_start),
        "query": preview(blocker.query),
    }


def _root_text(root: dict[str, Any], waiters: int) -> str:
    if root["pid"] == PREPARED_XACT_PID:
        return f"a prepared transaction blocks {waiters}"
    if "state" not in root:
        return f"pid {root['pid']} ({root['kind']}) blocks {waiters}"
    age = root["xact_seconds"]
    held = f" for {format_duration(age)}" if age is not None else ""
    return (
        f"root blocker pid {root['pid']} ('{root['application_name'] or ''}', role "
        f"{root['usename']}, {root['kind']}, {root['state']}{held}: {root['query']}) blocks "
        f"{waiters}"
    )


def _root_remedy(root: dict[str, Any]) -> str:
    pid = root["pid"]
    if pid == PREPARED_XACT_PID:
        return (
            "A prepared transaction holds the lock: SELECT gid, prepared, owner FROM "
            "pg_prepared_xacts; its owner decides between COMMIT PREPARED and ROLLBACK PREPARED"
        )
    if "state" not in root:
        return (
            f"The root blocker pid {pid} is hidden from pooldoctor's role: look at it as a role "
            "with pg_monitor before ending anything"
        )
    application_name: str | None = root.get("application_name")
    role: str | None = root.get("usename")
    states = [root["state"]] if root.get("state") else []

    def call(function: str) -> str:
        return backend_calls(
            function, [pid], application_name=application_name, role=role, states=states
        )

    terminate = call("pg_terminate_backend")
    if root.get("kind") != "the app":
        owner = f"'{application_name or ''}' (role {role})"
        return (
            f"The root blocker pid {pid} belongs to {owner}: ask its owner to stop it; if it must "
            f"go now: {terminate}"
        )
    if root.get("state") in IDLE_IN_TRANSACTION:
        return f"Release the lock (idle in transaction: cancel has no effect): {terminate}"
    return f"Release the lock: {call('pg_cancel_backend')} and if it persists {terminate}"


def check(readings: Readings) -> list[Finding]:
    logs = readings.log(LogEvent.LOCK_TIMEOUT, LogEvent.DEADLOCK, LogEvent.LOCK_WAIT)
    app = readings.app
    label = readings.label
    pool = readings.pool
    timeouts = readings.log(*POOL_TIMEOUT_EVENTS)
    locks = readings.locks
    chains = locks.last
    if chains is None:
        logged = log_finding(
            check=CHECK,
            label=label,
            signal=logs,
            what="lock timeouts/deadlocks/lock waits",
            title="Lock contention reported in the logs",
            severity=Severity.WARNING,
            confidence=LOGS_ONLY_CONFIDENCE,
            remediation=(
                "Find the blockers while it happens: SELECT pid, pg_blocking_pids(pid), state, "
                "query FROM pg_stat_activity WHERE wait_event_type = 'Lock';",
                f"Set lock_timeout (e.g. '{SUGGESTED_LOCK_TIMEOUT}s') for roles running DDL",
            ),
        )
        return [logged] if logged else []
    sample, waiters = chains.sample, chains.waiters
    app_waiters = [w for w in waiters if app is None or app.matches(w)]
    root_facts = [_describe_root(pid, sample, app) | {"waiters": len(w)} for pid, w in chains.roots]
    persistent = locks.persistent_roots()
    longest = max(seconds_between(sample.at, wait_began(w)) or 0.0 for w in waiters)
    whose = app.label if app is not None else "clients"
    reasons = [
        f"{len(app_waiters)} backends of {whose} wait on locks ({len(waiters)} in all, longest "
        f"{format_duration(longest)})",
        *(_root_text(root, root["waiters"]) for root in root_facts[:3]),
    ]
    hidden = sum(1 for b in sample.backends if b.query_hidden)
    if hidden:
        reasons.append(
            f"{hidden} session(s) were hidden from pooldoctor's role (no pg_monitor): the chain "
            "may continue through them, so it is not complete"
        )
    confidence = 0.6
    if persistent:
        confidence += 0.15
        reasons.append(f"same root blocker in {len(locks.chains)}/{locks.samples} samples")
    if not locks.current:
        confidence -= 0.2
        reasons.append("no lock waits in the latest sample: the queue has drained")
    if logs.current:
        confidence += 0.1
        reasons.append(logs.describe("lock timeouts/deadlocks/lock waits"))
    if pool.full_now:
        confidence += 0.1
    critical = locks.current and (
        len(app_waiters) >= LOCK_CRITICAL_WAITERS or pool.full_now or timeouts.current
    )
    if not app_waiters:
        confidence -= 0.25
    severity = Severity.CRITICAL if critical and app_waiters else Severity.WARNING
    steps = [_root_remedy(root) for root in root_facts[:3]]
    blocker_roles = {root.get("usename") for root in root_facts if root.get("usename")}
    steps.extend(
        f"Make {role}'s DDL/maintenance give up instead of queueing the app: "
        + alter_role(role, "lock_timeout", SUGGESTED_LOCK_TIMEOUT)
        for role in sorted(r for r in blocker_roles if isinstance(r, str))
    )
    steps.append("Keep transactions short; never leave a session idle in transaction holding locks")
    return [
        finding(
            CHECK,
            label,
            severity=severity,
            confidence=max(0.1, min(confidence, MAX_CONFIDENCE)),
            title="Lock contention: the app's sessions queue behind a lock holder",
            summary="; ".join(reasons),
            evidence={
                "root_blockers": root_facts[:MAX_LISTED],
                "waiting_pids": [w.pid for w in waiters][: MAX_LISTED * 3],
                "app_waiting": len(app_waiters),
                "longest_wait_seconds": round(longest, 1),
                "app": app.as_evidence() if app is not None else None,
                "log": logs.as_evidence(),
            },
            remediation=tuple(steps),
        )
    ]


SPEC = CheckSpec(
    CHECK,
    (CHECK,),
    "App sessions waiting on locks; names the root blocker (any application) and the exact "
    "pg_cancel_backend / pg_terminate_backend call.",
    check,
)
