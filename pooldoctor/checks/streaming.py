"""streaming-holds-session: streaming responses keep their session until the client finishes."""

from __future__ import annotations

from pooldoctor.checks.common import finding
from pooldoctor.checks.spec import CheckSpec
from pooldoctor.findings import Finding, Severity
from pooldoctor.readings import Readings
from pooldoctor.readings.pools import describe_holders, group_holders
from pooldoctor.readings.streaming import streaming_holders

CHECK = "streaming-holds-session"
STREAM_SHARE = 0.3  # share of held connections pinned by streams that starves a pool
MIN_STREAM_HOLDERS = 2  # one long download is normal; several pinned sessions are the pattern


def check(readings: Readings) -> list[Finding]:
    pool = readings.pool
    holders = pool.holders
    streaming = streaming_holders(holders)
    if len(streaming) < MIN_STREAM_HOLDERS or len(streaming) < STREAM_SHARE * len(holders):
        return []
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
    if pool.full_now:
        confidence += 0.1
    severity = Severity.CRITICAL if pool.full_now else Severity.WARNING
    return [
        finding(
            CHECK,
            readings.label,
            severity=severity,
            confidence=round(confidence, 2),
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
    "Pool holders whose origin is a streaming response or generator.",
    check,
)
