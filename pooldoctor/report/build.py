"""Build the report model from evidence and a diagnosis (pure: no clock, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

from pooldoctor.evidence import Evidence, SourceState
from pooldoctor.findings import Diagnosis, Finding, Role, Severity, Status
from pooldoctor.jsonio import to_plain
from pooldoctor.readings import Readings, read
from pooldoctor.readings.text import instance_label
from pooldoctor.redact import redact
from pooldoctor.report.chartdata import build_charts
from pooldoctor.report.keytimes import build_key_times, build_window
from pooldoctor.report.lead import build_lead, build_postmortem
from pooldoctor.report.model import (
    Environment,
    KeyTime,
    Report,
    ReportFinding,
    SourceRow,
)
from pooldoctor.report.present import setting_assignments
from pooldoctor.report.textfmt import as_utc, hhmm, percent
from pooldoctor.report.timeline import build_timeline
from pooldoctor.report.visibility import visibility_caveats, visibility_sentence
from pooldoctor.runbooks import Runbook, first_mitigation_step, runbook_url, section_items


def _first_step_without_conflict(runbook: Runbook | None, report_settings: set[str]) -> str | None:
    """The runbook's first Mitigation step, unless it sets a setting the findings set themselves.

    A runbook's example (`ALTER ROLE app SET x = '60s'`) next to the value derived from this
    incident (`ALTER ROLE "lab_app" SET x = '5min'`) would give two answers for one setting.
    """
    step = first_mitigation_step(runbook) if runbook else ""
    if not step or set(setting_assignments(step)) & report_settings:
        return None
    return step


def _report_finding(
    finding: Finding,
    titles: Mapping[str, str],
    base_url: str | None,
    runbooks: Mapping[str, Runbook],
    explains: tuple[str, ...],
    report_settings: set[str],
) -> ReportFinding:
    runbook = runbooks.get(finding.runbook)
    return ReportFinding(
        id=finding.id,
        check=finding.check,
        severity=finding.severity,
        confidence=float(finding.confidence),
        title=finding.title,
        summary=finding.summary,
        runbook=finding.runbook,
        role=finding.role,
        evidence=to_plain(dict(finding.evidence)),
        remediation=tuple(finding.remediation),
        runbook_title=titles.get(finding.runbook),
        runbook_url=runbook_url(base_url, finding.runbook) if base_url else None,
        runbook_first_step=_first_step_without_conflict(runbook, report_settings),
        prevention=section_items(runbook.body, "Prevention") if runbook else (),
        explains=explains,
    )


def folded_symptoms(findings: Sequence[Finding]) -> dict[str, tuple[str, ...]]:
    """Cause id -> ids of the symptom findings that point at it (shown inside the cause)."""
    folded: dict[str, list[str]] = {}
    ids = {f.id for f in findings}
    for finding in findings:
        target = finding.evidence.get("points_to")
        if finding.role is Role.SYMPTOM and isinstance(target, str) and target in ids:
            folded.setdefault(target, []).append(finding.id)
    return {cause: tuple(symptoms) for cause, symptoms in folded.items()}


def unavailable_reasons(evidence: Evidence) -> tuple[str, ...]:
    """What could not be collected (or only partly) and why, one line each, without repeats."""
    lines: list[str] = []

    def add(prefix: str, reason: str) -> None:
        reason = redact(reason)  # evidence files from elsewhere may quote a secret
        if reason and not any(reason in line for line in lines):
            lines.append(redact(f"{prefix}: {reason}"))

    for source in evidence.sources:
        if source.status is not SourceState.OK:
            add(f"{source.kind} {source.name}: {source.status.value}", source.detail or "no detail")
    postgres = evidence.postgres
    if postgres is not None:
        if postgres.connect_failure is not None:
            failure = postgres.connect_failure
            add(f"postgres {postgres.target}: {failure.category}", failure.message)
        for error in postgres.errors:
            add(f"postgres {postgres.target}", error)
    if evidence.config is not None:
        for problem in evidence.config.problems:
            add("config", problem)
    for log in evidence.logs:
        for problem in log.problems:
            add(f"log {log.path}", problem)
    if not evidence.sources:
        lines.append("no source was given: nothing to collect")
    return tuple(lines)


def build_environment(evidence: Evidence) -> Environment:
    """Versions, the server settings collected, and the app's pool configuration."""
    postgres = evidence.postgres
    config: dict[str, Any] = {}
    if evidence.config is not None:
        for item in fields(evidence.config):
            value = getattr(evidence.config, item.name)
            if item.name == "problems" or value is None or value == ():
                continue
            config[item.name] = to_plain(value)
    return Environment(
        pooldoctor_version=evidence.pooldoctor_version,
        postgres_version=postgres.server_version if postgres else None,
        postgres_target=postgres.target if postgres else None,
        postgres_user=postgres.current_user if postgres else None,
        settings=dict(sorted(postgres.settings.items())) if postgres else {},
        pool_config=config,
        pool_instances=tuple(instance_label(i.url) for i in evidence.pools),
        log_files=tuple(log.path for log in evidence.logs),
    )


def _healthy_summary(readings: Readings, sources: tuple[SourceRow, ...]) -> str:
    evidence = readings.evidence
    ok = sum(1 for s in sources if s.status == SourceState.OK.value)
    parts = [f"No problems found. {ok} of {len(sources)} source(s) were collected."]
    samples = [s for fill in readings.pool.fills for s in fill.samples if s.in_use is not None]
    if samples:
        busiest = max(samples, key=lambda s: s.in_use or 0)
        capacity = busiest.capacity
        of = f" of {capacity}" if capacity is not None else ""
        saturated = sum(1 for s in samples if s.full)
        parts.append(
            f"The busiest pool sample had {busiest.in_use}{of} connections checked out; "
            f"{saturated} of {len(samples)} sample(s) were saturated."
        )
    if evidence.logs:
        parts.append(f"{len(evidence.logs)} log file(s) were read.")
    return " ".join(parts)


def _incident_summary(
    status: Status, findings: tuple[ReportFinding, ...], key_times: tuple[KeyTime, ...]
) -> str:
    top = findings[0]
    parts = [
        f"Status {status.value.upper()}. Most probable root cause: {top.title} "
        f"({top.severity.value}, confidence {percent(top.confidence)}). "
        f"{top.summary.rstrip('.')}."
    ]
    times = {kt.name: kt for kt in key_times}
    first, peak, stuck = times["first_error"], times["peak_errors"], times["oldest_stuck"]
    if first.at is not None:
        sentence = f"Errors began at {hhmm(first.at)} UTC"
        if peak.at is not None and peak.count:
            sentence += f" and peaked at {peak.count}/min at {hhmm(peak.at)}"
        parts.append(sentence + ".")
    if stuck.at is not None:
        if stuck.complete:
            parts.append(
                f"The oldest work still stuck at collection began at {hhmm(stuck.at)} UTC."
            )
        else:
            parts.append(
                f"The oldest visible work still stuck at collection began at {hhmm(stuck.at)} "
                "UTC; sessions hidden from pooldoctor's role may be older."
            )
    others = findings[1:]
    if others:
        titles = "; ".join(f.title for f in others)
        parts.append(f"{len(others)} other finding(s): {titles}.")
    return " ".join(parts)


def build_summary(
    readings: Readings,
    status: Status,
    findings: tuple[ReportFinding, ...],
    key_times: tuple[KeyTime, ...],
    sources: tuple[SourceRow, ...],
    unavailable: tuple[str, ...],
) -> str:
    """One paragraph a responder can paste at the top of a postmortem."""
    failed = sum(1 for s in sources if s.status != SourceState.OK.value)
    if status is Status.UNKNOWN and not findings:
        text = "Status UNKNOWN: pooldoctor could not collect enough evidence to judge."
        if unavailable:
            text += " " + "; ".join(unavailable[:3]) + ("; …" if len(unavailable) > 3 else "")
        return text + "."
    serious = [f for f in findings if f.severity is not Severity.INFO]
    if status is Status.OK and not serious:
        text = _healthy_summary(readings, sources)
        if findings:
            text += f" {len(findings)} informational note(s) below."
    elif findings:
        text = _incident_summary(status, findings, key_times)
    else:
        text = f"Status {status.value.upper()}, but no check produced a finding."
    if failed:
        text += f" {failed} source(s) could not be collected; see below."
    hidden = visibility_sentence(readings)
    if hidden:
        text += f" {hidden}"
    return text


def build_report(
    evidence: Evidence,
    diagnosis: Diagnosis,
    *,
    generated_at: datetime,
    runbook_titles: Mapping[str, str] | None = None,
    runbook_base_url: str | None = None,
    runbooks: Mapping[str, Runbook] | None = None,
) -> Report:
    """Assemble the report model; findings keep the diagnosis' ranking. Every derived fact comes
    from the same Readings the checks judged (the diagnosis', else read here once)."""
    readings = diagnosis.readings or read(evidence)
    generated_at = as_utc(generated_at)
    runbooks = runbooks or {}
    titles = {**{slug: rb.title for slug, rb in runbooks.items()}, **(runbook_titles or {})}
    folded = folded_symptoms(diagnosis.findings)
    report_settings = {
        name
        for f in diagnosis.findings
        for step in f.remediation
        for name in setting_assignments(step)
    }
    findings = tuple(
        _report_finding(
            f, titles, runbook_base_url, runbooks, folded.get(f.id, ()), report_settings
        )
        for f in diagnosis.findings
    )
    sources = tuple(
        SourceRow(redact(s.name), s.kind, s.status.value, s.detail and redact(s.detail))
        for s in evidence.sources
    )
    key_times = build_key_times(readings, generated_at)
    timeline, omitted = build_timeline(
        readings,
        generated_at=generated_at,
        status=diagnosis.status,
        top_title=findings[0].title if findings else None,
    )
    unavailable = unavailable_reasons(evidence)
    lead = build_lead(readings, diagnosis.status, findings, key_times)
    return Report(
        status=diagnosis.status,
        generated_at=generated_at,
        summary=build_summary(
            readings, diagnosis.status, findings, key_times, sources, unavailable
        ),
        findings=findings,
        timeline=timeline,
        timeline_omitted=omitted,
        key_times=key_times,
        sources=sources,
        window=build_window(readings),
        environment=build_environment(evidence),
        unavailable=unavailable,
        visibility=visibility_caveats(readings),
        charts=build_charts(readings, key_times),
        lead=lead,
        postmortem=build_postmortem(findings, key_times, lead),
        differential=diagnosis.differential,
    )
