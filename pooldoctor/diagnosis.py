"""Run every check on one set of readings, arbitrate look-alikes, rank, set the overall status.

Arbitration (`arbitrate`): where two check families compete for the same evidence, the tie is
broken here and nowhere else:
  A. leak vs thread-pool deadlock: when the deadlock signature fits at least DEADLOCK_DISCOUNT as
     well as a current leak signature whose holders' threads are all alive (finished threads wait
     on nothing), the leak findings (connection-leak, async-cancellation-leak) keep only
     DEADLOCK_DISCOUNT of their confidence and say so (`discounted_for`);
  B. leak vs async cancellation: when async-cancellation-leak explains the leak (cancellation
     hints), connection-leak keeps CANCELLATION_DISCOUNT of its confidence;
  C. leak vs streaming: holders whose origin is streaming code belong to streaming-holds-session;
     the leak reading leaves them out (readings.streaming.is_streaming);
  D. leak vs idle in transaction: sessions the leak reading claims (readings.leaked_pids: old
     persistent transactions, transactions held past the app's own baseline while the pool
     starves, sessions of checkouts whose thread finished) are not counted as idle in
     transaction; nor are transactions whose cursor FETCHes move on (readings.holds.streaming),
     which belong to streaming-holds-session;
  E. idle in transaction vs thread-pool deadlock: when the app's transactions end only as their
     own requests time out, in bursts one pool_timeout apart (readings.lockstep), they wait on
     the pool, not elsewhere: idle-in-transaction keeps LOCKSTEP_DISCOUNT of its confidence.
C and D partition the evidence in the readings, so both families see the same split.

Then the differential diagnosis (pooldoctor.differential) lists findings[0]'s look-alikes with
the numbers that rule each out, and says when the window cannot decide between two causes.

Ranking rule (findings[0] is the most probable root cause):
  1. actionable findings (critical/warning) before informational ones (history, context);
  2. then role: cause > symptom > risk (a symptom never outranks the cause it points to);
  3. then severity: critical > warning > info;
  4. then confidence, which checks already weigh by recency (old log bursts fade);
  5. then id, so equal findings keep a stable order.
So a CRITICAL risk outranks only informational findings, never a current cause.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from pooldoctor.checks import async_cancellation, connection_leak, idle_in_transaction
from pooldoctor.checks.registry import CHECKS
from pooldoctor.checks.spec import CheckSpec
from pooldoctor.differential import differential
from pooldoctor.evidence import Evidence, SourceState
from pooldoctor.findings import Diagnosis, Finding, Role, Severity, Status
from pooldoctor.readings import Readings, read

DEADLOCK_DISCOUNT = 0.6  # a leak that a thread-pool deadlock explains at least this well
CANCELLATION_DISCOUNT = 0.8  # a plain leak that async cancellation explains better
LOCKSTEP_DISCOUNT = 0.6  # idle in transaction whose transactions end with their own timeouts
LEAK_FAMILY = (connection_leak.CHECK, async_cancellation.CHECK)
_ROLE_RANK = {Role.CAUSE: 0, Role.SYMPTOM: 1, Role.RISK: 2}
_SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}
INTERNAL_ERROR_CHECK = "internal-error"


def rank_key(finding: Finding) -> tuple[int, int, int, float, str]:
    return (
        1 if finding.severity is Severity.INFO else 0,
        _ROLE_RANK[finding.role],
        _SEVERITY_RANK[finding.severity],
        -finding.confidence,
        finding.id,
    )


def rank(findings: Sequence[Finding]) -> list[Finding]:
    """Order findings by rank_key and point the symptom at the cause ranked first."""
    ordered = sorted(findings, key=rank_key)
    cause = next(
        (f for f in ordered if f.role is Role.CAUSE and f.severity is not Severity.INFO), None
    )
    if cause is None:
        return ordered
    return [
        replace(
            f,
            runbook=cause.runbook,
            evidence={**f.evidence, "points_to": cause.id},
            summary=f"{f.summary}; most probable cause: {cause.title} ({cause.id})",
        )
        if f.role is Role.SYMPTOM
        else f
        for f in ordered
    ]


def overall_status(evidence: Evidence, findings: Sequence[Finding]) -> Status:
    """CRITICAL whenever a finding is (a refusal is evidence even when nothing was collected)."""
    severities = {f.severity for f in findings}
    if Severity.CRITICAL in severities:
        return Status.CRITICAL
    if not evidence.sources or all(s.status is not SourceState.OK for s in evidence.sources):
        return Status.UNKNOWN
    if Severity.WARNING in severities:
        return Status.WARNING
    return Status.OK


def _internal_error(spec: CheckSpec, exc: Exception) -> Finding:
    return Finding(
        id=f"{INTERNAL_ERROR_CHECK}:{spec.name}",
        check=INTERNAL_ERROR_CHECK,
        severity=Severity.INFO,
        confidence=0.0,
        title=f"Check {spec.name} failed (pooldoctor bug)",
        summary=f"{type(exc).__name__}: {exc}; the other checks ran. Please report this.",
        runbook=spec.runbooks[0],
    )


def _discounted(finding: Finding, factor: float, reason: str | None = None) -> Finding:
    evidence = {**finding.evidence, "discounted_for": reason} if reason else finding.evidence
    return replace(finding, confidence=round(finding.confidence * factor, 2), evidence=evidence)


def deadlock_explains_leak(readings: Readings) -> bool:
    """Rule A: the deadlock signature fits a current leak (held by live threads) nearly as well."""
    leak, deadlock = readings.leak, readings.deadlock
    if leak is None or deadlock is None or not leak.current or leak.orphaned_count:
        return False
    return deadlock.confidence >= leak.confidence * DEADLOCK_DISCOUNT


def arbitrate(readings: Readings, findings: Sequence[Finding]) -> list[Finding]:
    """Break the ties between look-alike check families (rules A, B and E above)."""
    deadlock = deadlock_explains_leak(readings)
    cancelled = any(f.check == async_cancellation.CHECK for f in findings)
    arbitrated: list[Finding] = []
    for finding in findings:
        if deadlock and finding.check in LEAK_FAMILY:
            finding = _discounted(finding, DEADLOCK_DISCOUNT, "threadpool-deadlock signature")
        if cancelled and finding.check == connection_leak.CHECK:
            finding = _discounted(finding, CANCELLATION_DISCOUNT)
        if readings.lockstep is not None and finding.check == idle_in_transaction.CHECK:
            finding = _discounted(finding, LOCKSTEP_DISCOUNT, "threadpool-deadlock lockstep")
        arbitrated.append(finding)
    return arbitrated


def diagnose(
    evidence: Evidence, *, checks: Sequence[CheckSpec] = CHECKS, strict: bool = False
) -> Diagnosis:
    """Run the checks; a failing check becomes an INFO finding unless `strict` (tests) re-raises."""
    readings = read(evidence)
    findings: list[Finding] = []
    for spec in checks:
        try:
            findings.extend(spec.check(readings))
        except Exception as exc:
            if strict:
                raise
            findings.append(_internal_error(spec, exc))
    ranked = rank(arbitrate(readings, findings))
    considered = differential(readings, ranked)
    return Diagnosis(
        status=overall_status(evidence, ranked),
        findings=tuple(ranked),
        differential=considered.as_plain() if considered is not None else None,
        readings=readings,
    )
