"""Run every check, rank the findings and set the overall status.

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

from pooldoctor.checks.registry import CHECKS, CheckSpec
from pooldoctor.evidence import Evidence, SourceState
from pooldoctor.findings import Diagnosis, Finding, Role, Severity, Status

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


def diagnose(
    evidence: Evidence, *, checks: Sequence[CheckSpec] = CHECKS, strict: bool = False
) -> Diagnosis:
    """Run the checks; a failing check becomes an INFO finding unless `strict` (tests) re-raises."""
    findings: list[Finding] = []
    for spec in checks:
        try:
            findings.extend(spec.run(evidence))
        except Exception as exc:
            if strict:
                raise
            findings.append(_internal_error(spec, exc))
    ranked = rank(findings)
    return Diagnosis(status=overall_status(evidence, ranked), findings=tuple(ranked))
