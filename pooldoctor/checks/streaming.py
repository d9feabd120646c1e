"""streaming-holds-session: streaming responses keep their session until the client finishes."""

from __future__ import annotations

from pooldoctor.checks.common import finding
from pooldoctor.checks.spec import CheckSpec
from pooldoctor.durations import format_duration
from pooldoctor.findings import Finding, Severity
from pooldoctor.readings import Readings
from pooldoctor.readings.pools import describe_holders, group_holders
from pooldoctor.readings.sessions import sessions_evidence
from pooldoctor.readings.streaming import streaming_holders
from pooldoctor.readings.text import fmt_clock, preview

CHECK = "streaming-holds-session"
STREAM_SHARE = 0.3  # share of held connections pinned by streams that starves a pool
MIN_STREAM_HOLDERS = 2  # one long download is normal; several pinned sessions are the pattern
CURSOR_CONFIDENCE = 0.7  # open transactions whose cursor FETCHes move on between samples
FULL_POOL_CONFIDENCE = 0.1


def cursor_check(readings: Readings) -> list[Finding]:
    """Without holders: transactions that stay open across the samples while their cursor
    FETCHes move on are sessions held by responses streaming to their clients."""
    holds = readings.holds
    streams = holds.streaming
    pool = readings.pool
    total = len(holds.trend.latest) if holds.trend is not None else 0
    if len(streams) < MIN_STREAM_HOLDERS or len(streams) < STREAM_SHARE * max(total, 1):
        return []
    oldest = streams[0]
    confidence = CURSOR_CONFIDENCE + (FULL_POOL_CONFIDENCE if pool.full_now else 0.0)
    query = preview(oldest.backend.query) or ""
    reasons = [
        f"{len(streams)}/{total} backends keep one transaction open across all samples "
        f"(oldest since {fmt_clock(oldest.since)}, {format_duration(oldest.age_seconds)}) while "
        f"their server-side cursors move on between samples ({query!r}): each is a response "
        "still streaming rows to its client",
        f"{format_duration(oldest.age_seconds)} is {holds.baseline.multiple(oldest.age_seconds)}",
    ]
    return [
        finding(
            CHECK,
            readings.label,
            severity=Severity.CRITICAL if pool.full_now else Severity.WARNING,
            confidence=round(confidence, 2),
            title="Streaming responses hold database sessions until the client finishes",
            summary="; ".join(([pool.describe()] if pool.has_data else []) + reasons),
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


def check(readings: Readings) -> list[Finding]:
    pool = readings.pool
    holders = pool.holders
    streaming = streaming_holders(holders)
    if len(streaming) < MIN_STREAM_HOLDERS or len(streaming) < STREAM_SHARE * len(holders):
        return cursor_check(readings)
    rows = group_holders(streaming)
    confidence = 0.6
    reasons = [
        f"{len(streaming)}/{len(holders)} held connections come from streaming code: "
        f"{describe_holders(rows)}"
    ]
    trend = readings.sessions
    if trend is not None and trend.idle_in_tx:
        confidence += 0.15
        reasons.append(
            f"{len(trend.idle_in_tx)} backends of {trend.app.label} idle in transaction "
            "while the streams run"
        )
        hidden = readings.visibility.app_counts_note(trend.app.label)
        if hidden:
            reasons.append(hidden)
    if pool.full_now:
        confidence += 0.1
    severity = Severity.CRITICAL if pool.full_now else Severity.WARNING
    return [
        finding(
            CHECK,
            readings.label,
            severity=severity,
            confidence=confidence,
            title="Streaming responses hold database sessions until the client finishes",
            summary="; ".join(([pool.describe()] if pool.has_data else []) + reasons),
            evidence={"pool": pool.as_evidence(), "streaming_holders": rows},
            remediation=(
                f"Finish database work before streaming in {rows[0]['origin']}: load the rows, "
                "close the session, then stream",
                "FastAPI >= 0.121: Depends(..., scope='function') closes the session before the "
                "response streams; otherwise open a short session inside the generator",
            ),
        )
    ]


SPEC = CheckSpec(
    CHECK,
    (CHECK,),
    "Holders in streaming code, or transactions held across samples while their cursor "
    "FETCHes move on.",
    check,
)
