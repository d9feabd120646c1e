"""Findings: what a check concludes from evidence, with the numbers that justify it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pooldoctor.readings import Readings


class Severity(StrEnum):
    """How bad a finding is; orders the report status."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class Role(StrEnum):
    """Whether a finding is a root cause, a symptom of one, or a latent risk."""

    CAUSE = "cause"
    SYMPTOM = "symptom"
    RISK = "risk"


@dataclass(frozen=True)
class Finding:
    """One conclusion. `evidence` holds JSON-ready references (pids, ages, counts, lines)."""

    id: str
    check: str
    severity: Severity
    confidence: float
    title: str
    summary: str
    runbook: str
    role: Role = Role.CAUSE
    evidence: dict[str, Any] = field(default_factory=dict)
    remediation: tuple[str, ...] = ()


class Status(StrEnum):
    """Overall verdict of a diagnosis (Nagios-style; maps onto exit codes)."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Diagnosis:
    """The ranked outcome of all checks: findings[0] is the most probable root cause."""

    status: Status
    findings: tuple[Finding, ...] = ()
    # findings[0]'s look-alikes and why each lost (pooldoctor.differential.Differential.as_plain)
    differential: dict[str, Any] | None = None
    # The one reading the checks judged by; the report reads it too instead of deriving again.
    readings: Readings | None = field(default=None, compare=False, repr=False)
