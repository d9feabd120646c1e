"""streaming-holds-session: streaming responses keep their session until the client finishes."""

from __future__ import annotations

from pooldoctor.checks.common import app_label
from pooldoctor.checks.sessions import session_trend, sessions_evidence
from pooldoctor.checks.signals import (
    describe_holders,
    fmt_clock,
    fmt_duration,
    group_holders,
    pool_signal,
)
from pooldoctor.evidence import Evidence
from pooldoctor.findings import Finding, Severity
from pooldoctor.readings.holds import hold_reading

CHECK = "streaming-holds-session"
RUNBOOK = "streaming-holds-session"
STREAM_MARKERS = (
    "stream",
    "sse",
    "eventsource",
    "event_source",
    "generator",
    "iter_",
    "yield",
    "fileresponse",
    "websocket",
)
STREAM_SHARE = 0.3  # share of held connections pinned by streams that starves a pool
MIN_STREAM_HOLDERS = 2  # one long download is normal; several pinned sessions are the pattern


def cursor_check(evidence: Evidence) -> list[Finding]:
    """Without holders: transactions that stay open across the samples while their cursor
    FETCHes move on are sessions held by responses streaming to their clients."""
    holds = hold_reading(evidence)
    streams = holds.streaming
    pool = holds.pool
    total = len(holds.trend.latest) if holds.trend is not None else 0
    if len(streams) < MIN_STREAM_HOLDERS or len(streams) < STREAM_SHARE * max(total, 1):
        return []
    oldest = streams[0]
    confidence = 0.7 + (0.1 if pool.full_now else 0.0)
    query = " ".join((oldest.backend.query or "").split())[:80]
    reasons = [
        f"{len(streams)}/{total} backends keep one transaction open across all samples "
        f"(oldest since {fmt_clock(oldest.since)}, {fmt_duration(oldest.age_seconds)}) while "
        f"their server-side cursors move on between samples ({query!r}): each is a response "
        "still streaming rows to its client",
        f"{fmt_duration(oldest.age_seconds)} is {holds.baseline.multiple(oldest.age_seconds)}",
    ]
    return [
        Finding(
            id=f"{CHECK}:{app_label(evidence)}",
            check=CHECK,
            severity=Severity.CRITICAL if pool.full_now else Severity.WARNING,
            confidence=round(confidence, 2),
            title="Streaming responses hold database sessions until the client finishes",
            summary="; ".join(([pool.describe()] if pool.has_data else []) + reasons),
            runbook=RUNBOOK,
            evidence={
                "pool": pool.as_evidence(),
                "streaming_pids": [h.pid for h in streams],
                "streaming_sessions": sessions_evidence(streams),
                "baseline": holds.baseline.as_evidence(),
            },
            remediation=(
                "Finish database work before streaming: load the rows (or write the export to "
                "storage), close the session, then stream",
                "FastAPI >= 0.121: Depends(..., scope='function') closes the session before the "
                "response streams; otherwise open a short session per chunk inside the generator",
            ),
        )
    ]


def check(evidence: Evidence) -> list[Finding]:
    pool = pool_signal(evidence)
    holders = pool.holders
    streaming = [h for h in holders if any(m in h.origin.lower() for m in STREAM_MARKERS)]
    if len(streaming) < MIN_STREAM_HOLDERS or len(streaming) < STREAM_SHARE * len(holders):
        return cursor_check(evidence)
    rows = group_holders(streaming)
    confidence = 0.6
    reasons = [
        f"{len(streaming)}/{len(holders)} held connections come from streaming code: "
        f"{describe_holders(rows)}"
    ]
    trend = session_trend(evidence)
    if trend is not None and trend.idle_in_tx:
        confidence += 0.15
        reasons.append(
            f"{len(trend.idle_in_tx)} backends of {trend.app.label} idle in transaction "
            "while the streams run"
        )
    if pool.full_now:
        confidence += 0.1
    severity = Severity.CRITICAL if pool.full_now else Severity.WARNING
    return [
        Finding(
            id=f"{CHECK}:{app_label(evidence)}",
            check=CHECK,
            severity=severity,
            confidence=round(confidence, 2),
            title="Streaming responses hold database sessions until the client finishes",
            summary="; ".join(([pool.describe()] if pool.has_data else []) + reasons),
            runbook=RUNBOOK,
            evidence={"pool": pool.as_evidence(), "streaming_holders": rows},
            remediation=(
                f"Finish database work before streaming in {rows[0]['origin']}: load the rows, "
                "close the session, then stream",
                "FastAPI >= 0.121: Depends(..., scope='function') closes the session before the "
                "response streams; otherwise open a short session inside the generator",
            ),
        )
    ]
