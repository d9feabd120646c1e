"""The four-line lead (What / Where / Impact / Do now) and the postmortem sections of a report."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pooldoctor.durations import format_duration
from pooldoctor.findings import Role, Severity, Status
from pooldoctor.readings import Readings
from pooldoctor.readings.app import is_client, is_self
from pooldoctor.readings.logs import LogReadings
from pooldoctor.report.model import KeyTime, Lead, Postmortem, ReportFinding
from pooldoctor.report.present import step_code
from pooldoctor.report.textfmt import as_utc, hhmm, stamp
from pooldoctor.report.timeline import NON_ERROR_EVENTS, log_event_label


def error_counts(logs: LogReadings) -> Counter[str]:
    """Error events per kind across every log file, by their plain-words label."""
    counts: Counter[str] = Counter()
    for event, signal in logs.by_event.items():
        if event not in NON_ERROR_EVENTS and signal.count > 0:
            counts[log_event_label(event)] += signal.count
    return counts


def _code_path(finding: ReportFinding) -> str | None:
    holders: Any = finding.evidence.get("holders")
    if isinstance(holders, list) and holders and isinstance(holders[0], dict):
        origin = holders[0].get("origin")
        return str(origin) if origin else None
    return None


def _applications(readings: Readings) -> list[str]:
    """The app the checks judged (its identity), else the busiest client application names."""
    if readings.app is not None:
        return [readings.app.short]
    sample = readings.activity
    if sample is None:
        return []
    names = Counter(
        b.application_name
        for b in sample.backends
        if b.application_name and is_client(b) and not is_self(b)
    )
    return [name for name, _ in names.most_common(3)]


_CONNINFO_PAIR = re.compile(r"(\w+)=(\S+)")


def short_target(target: str) -> str:
    """`host=db port=5432 dbname=app user=x` -> `db:5432/app`; URLs and other forms unchanged."""
    pairs = dict(_CONNINFO_PAIR.findall(target))
    if "://" in target or not pairs.get("host"):
        return target
    port = f":{pairs['port']}" if "port" in pairs else ""
    database = f"/{pairs['dbname']}" if "dbname" in pairs else ""
    return f"{pairs['host']}{port}{database}"


def _where(readings: Readings, top: ReportFinding) -> str:
    evidence = readings.evidence
    parts: list[str] = []
    instances = [fill.label for fill in readings.pool.fills]
    if instances:
        parts.append("instance " + ", ".join(instances))
    apps = _applications(readings)
    if apps:
        parts.append("app " + ", ".join(f"'{a}'" for a in apps))
    roots = readings.stuck.root_blockers()
    if roots:  # the cause of the lock waits, whoever owns it
        parts.append(", ".join(f"root blocker {w.who}" for w in roots))
    if evidence.postgres is not None:
        parts.append(f"database {short_target(evidence.postgres.target)}")
    code = _code_path(top)
    if code:
        parts.append(f"code path {code}")
    return "; ".join(parts) or "not known from the evidence collected"


def _impact(readings: Readings, key_times: Sequence[KeyTime]) -> str:
    counts = error_counts(readings.logs)
    times = {kt.name: kt for kt in key_times}
    first, peak = times.get("first_error"), times.get("peak_errors")
    if counts:
        kinds = ", ".join(f"{n} {label}" for label, n in counts.most_common())
        text = kinds
        if first is not None and first.at is not None:
            text += f" since {stamp(first.at)} UTC"
        if peak is not None and peak.at is not None and peak.count:
            text += f" (peak {peak.count}/min at {hhmm(peak.at)})"
    else:
        text = "no errors in the logs collected"
    pool = readings.pool
    if pool.samples:
        text += f"; pool full in {pool.full_samples} of {pool.samples} samples"
    return text


def build_lead(
    readings: Readings,
    status: Status,
    findings: Sequence[ReportFinding],
    key_times: Sequence[KeyTime],
) -> Lead | None:
    """The lead for the top finding; None when nothing is wrong or nothing could be judged."""
    if not findings or findings[0].severity is Severity.INFO:
        return None
    top = findings[0]
    do_now = top.remediation[0] if top.remediation else (top.runbook_first_step or "")
    if top.runbook_url:
        do_now += f" (runbook: {top.runbook_url})"
    elif top.runbook:
        do_now += f" (runbook: `pooldoctor runbooks show {top.runbook}`)"
    return Lead(
        what=f"{top.title} ({status.value.upper()}, confidence {round(top.confidence * 100)}%)",
        where=_where(readings, top),
        impact=_impact(readings, key_times),
        do_now=do_now.strip(),
    )


def action_items(findings: Sequence[ReportFinding]) -> tuple[str, ...]:
    """Remediation steps of the causes and risks, then their runbooks' prevention, no repeats.

    A step whose commands all appeared in an earlier item is a repeat too (the leak's "Backstop:
    `ALTER ROLE …`" and the timeout finding's bare `ALTER ROLE …`).
    """
    items: list[str] = []
    commands_seen: set[str] = set()
    for finding in findings:
        if finding.severity is Severity.INFO or finding.role is Role.SYMPTOM:
            continue
        for step in finding.remediation:
            commands = set(step_code(step))
            if step not in items and not (commands and commands <= commands_seen):
                items.append(step)
            commands_seen |= commands
        for step in finding.prevention:
            item = f"Prevent: {step}"
            if item not in items:
                items.append(item)
    return tuple(items)


def build_postmortem(
    findings: Sequence[ReportFinding],
    key_times: Sequence[KeyTime],
    lead: Lead | None,
) -> Postmortem | None:
    """Impact, detection, root cause and action items; None when there is no incident."""
    if lead is None:
        return None
    times = {kt.name: kt for kt in key_times}
    detected = times.get("detection")
    first = times.get("first_error")
    detection = "pooldoctor diagnosis"
    if detected is not None and detected.at is not None:
        detection += f" at {stamp(detected.at)} UTC"
        if first is not None and first.at is not None:
            after = (as_utc(detected.at) - as_utc(first.at)).total_seconds()
            detection += f", {format_duration(after)} after the first error"
    top = findings[0]
    root_cause = f"{top.title}. {top.summary.rstrip('.')}."
    return Postmortem(
        impact=lead.impact,
        detection=detection + ". Record here which alert or person noticed it first.",
        root_cause=root_cause,
        action_items=action_items(findings),
    )
