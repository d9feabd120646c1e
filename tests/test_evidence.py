"""The evidence model's JSON round trip and schema guard."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pooldoctor.evidence import (
    ActivitySample,
    Backend,
    ConnectFailure,
    Evidence,
    EvidenceFormatError,
    Holder,
    LogEvent,
    LogEventSummary,
    LogFileEvidence,
    MinuteCount,
    PoolConfig,
    PoolInstance,
    PoolSample,
    PostgresEvidence,
    SampleError,
    SourceState,
    SourceStatus,
    evidence_from_json,
    evidence_to_json,
)

T0 = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)


def full_evidence() -> Evidence:
    backend = Backend(
        pid=4242,
        backend_type="client backend",
        usename="app",
        datname="shop",
        application_name="api",
        client_addr="10.0.0.5",
        state="idle in transaction",
        backend_start=T0,
        xact_start=T0,
        query_start=T0,
        state_change=T0,
        wait_event_type="Client",
        wait_event="ClientRead",
        blocking_pids=(17,),
        query="UPDATE orders SET total = $1",
        query_hidden=False,
    )
    return Evidence(
        collected_at=T0,
        started_at=T0,
        pooldoctor_version="test",
        since=T0,
        pools=(
            PoolInstance(
                url="http://api-1/pool-status",
                samples=(
                    PoolSample(
                        at=T0,
                        payload_format="json",
                        size=20,
                        checked_out=20,
                        overflow=0,
                        max_overflow=10,
                        timeout=30.0,
                        counters={"checkouts": 5.0},
                        holders=(
                            Holder("api/orders.py:42 create_order", 912.5, "worker-1", False),
                        ),
                    ),
                ),
                errors=(SampleError(T0, "HTTP 503"),),
            ),
        ),
        postgres=PostgresEvidence(
            target="host=db user=app",
            connect_failure=ConnectFailure("too_many_clients", "sorry", "53300"),
            settings={"max_connections": "100"},
            samples=(ActivitySample(T0, (backend,)),),
        ),
        logs=(
            LogFileEvidence(
                path="app.log",
                flavor="python",
                lines=10,
                timestamped_lines=10,
                first=T0,
                last=T0,
                events=(
                    LogEventSummary(
                        LogEvent.POOL_TIMEOUT, 3, T0, T0, (MinuteCount(T0, 3),), ("line",)
                    ),
                ),
            ),
        ),
        config=PoolConfig(files=("app.env",), pool_size=20, pool_pre_ping=False),
        sources=(SourceStatus("app.log", "log", SourceState.OK, "10 lines", T0, T0),),
    )


def test_round_trip_preserves_every_field() -> None:
    evidence = full_evidence()
    assert evidence_from_json(evidence_to_json(evidence)) == evidence


def test_times_are_utc_with_z() -> None:
    text = evidence_to_json(full_evidence())
    assert '"collected_at": "2026-11-21T09:30:00Z"' in text


def test_unknown_schema_is_refused() -> None:
    text = evidence_to_json(full_evidence()).replace("pooldoctor.evidence/1", "other/9")
    with pytest.raises(EvidenceFormatError, match="unsupported evidence schema"):
        evidence_from_json(text)


@pytest.mark.parametrize("text", ["[]", "{}", "not json", '{"collected_at": 5}'])
def test_malformed_files_raise_format_error(text: str) -> None:
    with pytest.raises(EvidenceFormatError):
        evidence_from_json(text)


def test_holders_from_before_thread_alive_still_load() -> None:
    text = evidence_to_json(full_evidence()).replace('"thread_alive": false', '"unused": 0')
    assert '"thread_alive"' not in text
    [instance] = evidence_from_json(text).pools
    assert instance.samples[0].holders[0].thread_alive is None
