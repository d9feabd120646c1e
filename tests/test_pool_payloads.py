"""Pure tests of the pool-status payload parsers and of URL redaction."""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool, QueuePool

from pooldoctor.app import instrument, pool_status, uninstrument
from pooldoctor.app.status import MAX_HOLDERS
from pooldoctor.collect.pool_payloads import HTML_MESSAGE, PayloadError, parse_pool_payload
from pooldoctor.collect.pool_status import describe_error
from pooldoctor.evidence import Holder, PoolSample
from pooldoctor.readings import read
from pooldoctor.redact import is_sensitive_param, redact_url
from pooldoctor.status_schema import HOLDER_FIELDS, POOL_FIELDS
from tests.evidence_builders import evidence, pool

AT = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)

SEED_JSON = '{"size": 20, "checked_out": 20, "overflow": 0, "timeout": 30, "max_overflow": 10}'
HELPER_JSON = {
    "size": 20,
    "checked_out": 20,
    "checked_in": 0,
    "overflow": 0,
    "max_overflow": 10,
    "timeout": 30.0,
    "waiting": 3,
    "holders": [
        {"origin": "app/health.py:9 in ping", "age_seconds": 0.2, "thread": "Thread-9"},
        {"origin": "app/orders.py:42 in create_order", "age_seconds": 912.5, "thread": "Thread-3"},
    ],
    "counters": {"checkouts": 1234, "pool_timeouts": 7, "invalidations": 0},
}
PSYCOPG_STATS = {
    "pool_min": 4,
    "pool_max": 10,
    "pool_size": 10,
    "pool_available": 2,
    "requests_waiting": 5,
    "usage_ms": 81234,
    "requests_num": 1200,
    "requests_queued": 40,
    "requests_wait_ms": 9000,
    "connections_num": 10,
    "connections_ms": 120,
}
SEED_PROMETHEUS = """\
# HELP db_pool_size_total Total pool size
# TYPE db_pool_size_total gauge
db_pool_size_total 20.0
# HELP db_pool_checked_out Connections in use
# TYPE db_pool_checked_out gauge
db_pool_checked_out 20.0
# HELP db_pool_idle Idle connections
# TYPE db_pool_idle gauge
db_pool_idle 0.0
# HELP db_pool_overflow Overflow connections
# TYPE db_pool_overflow gauge
db_pool_overflow 0.0
# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 1234.0
"""
POOLDOCTOR_PROMETHEUS = """\
# TYPE pooldoctor_pool_size gauge
pooldoctor_pool_size{pool="main"} 20
pooldoctor_pool_checked_out{pool="main"} 18
pooldoctor_pool_checked_in{pool="main"} 2
pooldoctor_pool_overflow{pool="main"} -2
pooldoctor_pool_max_overflow{pool="main"} 10
pooldoctor_pool_timeout_seconds{pool="main"} 30
pooldoctor_pool_waiting{pool="main"} 0
# TYPE pooldoctor_pool_checkouts counter
pooldoctor_pool_checkouts_total{pool="main"} 5678
pooldoctor_pool_checkouts_created{pool="main"} 1.7e9
pooldoctor_pool_timeouts_total{pool="main"} 3
pooldoctor_pool_invalidations_total{pool="main"} 1
pooldoctor_pool_oldest_checkout_age_seconds{pool="main"} 912.5
"""


def parse(body: str, content_type: str | None = None) -> PoolSample:
    return parse_pool_payload(body, content_type, AT)


def test_seed_incident_json() -> None:
    sample = parse(SEED_JSON, "application/json")
    assert sample == PoolSample(
        at=AT,
        payload_format="json",
        size=20,
        checked_out=20,
        overflow=0,
        max_overflow=10,
        timeout=30.0,
    )


def test_helper_json_holders_oldest_first_and_counters() -> None:
    sample = parse(json.dumps(HELPER_JSON))
    assert (sample.size, sample.checked_out, sample.checked_in, sample.waiting) == (20, 20, 0, 3)
    assert sample.holders == (
        Holder("app/orders.py:42 in create_order", 912.5, "Thread-3"),
        Holder("app/health.py:9 in ping", 0.2, "Thread-9"),
    )
    assert sample.counters == {"checkouts": 1234.0, "pool_timeouts": 7.0, "invalidations": 0.0}


def test_holders_thread_alive_is_read_and_only_booleans_count() -> None:
    held = [
        {"origin": "app/orders.py:42 in create_order", "age_seconds": 12, "thread_alive": False},
        {"origin": "app/feed.py:8 in poll", "age_seconds": 3, "thread_alive": True},
        {"origin": "app/items.py:17 in list_items", "age_seconds": 2, "thread_alive": "no"},
        {"origin": "app/items.py:17 in list_items", "age_seconds": 1},
    ]
    sample = parse(json.dumps({**HELPER_JSON, "holders": held, "holders_dead_threads": 1}))
    assert [h.thread_alive for h in sample.holders] == [False, True, None, None]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"pool_size": 5, "checkedout": 4, "idle": 1}, (5, 4, 1)),
        ({"size": 5, "in_use": 3, "available": 2}, (5, 3, 2)),
        ({"poolSize": 8, "checkedOut": 8, "checkedIn": 0}, (8, 8, 0)),
        ({"service": "orders", "pool": {"size": 5, "checked_out": 5}}, (5, 5, None)),
        ({"status": "ok", "db": {"size": 6, "in_use": 1, "idle": 5}}, (6, 1, 5)),
        ({"database": {"size": "7", "checked_out": "2"}}, (7, 2, None)),
    ],
)
def test_json_variants(document: dict[str, Any], expected: tuple[int | None, ...]) -> None:
    sample = parse(json.dumps(document))
    assert sample.payload_format == "json"
    assert (sample.size, sample.checked_out, sample.checked_in) == expected


def sqlite_connection() -> Any:
    """A real DB-API connection for real SQLAlchemy pools, usable from any thread."""
    return sqlite3.connect(":memory:", check_same_thread=False)


def real_queuepool_status(checkouts: int) -> str:
    """status() of a real SQLAlchemy QueuePool (sqlite3 connections) with `checkouts` held."""
    pool = QueuePool(sqlite_connection, pool_size=3, max_overflow=2)
    held = [pool.connect() for _ in range(checkouts)]
    text = pool.status()
    for connection in held:
        connection.close()
    pool.dispose()
    return text


def test_real_queuepool_status_text_with_overflow_in_use() -> None:
    sample = parse(real_queuepool_status(4), "text/plain")
    assert sample.payload_format == "sqlalchemy-status"
    assert (sample.size, sample.checked_in, sample.overflow, sample.checked_out) == (3, 0, 1, 4)
    assert sample.notes == ()


def test_fresh_queuepool_has_negative_raw_overflow() -> None:
    sample = parse(real_queuepool_status(0))
    assert (sample.size, sample.checked_out, sample.overflow) == (3, 0, -3)
    assert "starts at -pool_size" in sample.notes[0]


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"status": real_queuepool_status(2)}),
        json.dumps({"pool": real_queuepool_status(2), "service": "orders"}),
        json.dumps(real_queuepool_status(2)),
        "pool: " + real_queuepool_status(2) + "\n",
    ],
)
def test_queuepool_status_inside_json_or_text(body: str) -> None:
    sample = parse(body)
    assert (sample.payload_format, sample.size, sample.checked_out) == ("sqlalchemy-status", 3, 2)


def test_nullpool() -> None:
    pool = NullPool(sqlite_connection)
    for body in (pool.status(), json.dumps({"status": pool.status()})):
        sample = parse(body)
        assert sample.payload_format == "sqlalchemy-nullpool"
        assert (sample.size, sample.checked_out, sample.overflow) == (None, None, None)


def test_helper_json_for_a_nullpool_engine_with_nulls() -> None:
    document: dict[str, Any] = {
        "size": None,
        "checked_out": 3,
        "checked_in": None,
        "overflow": None,
        "max_overflow": None,
        "timeout": None,
        "holders": [],
        "counters": {"checkouts": 9},
        "pool_class": "NullPool",
        "instrumented": True,
    }
    sample = parse(json.dumps(document))
    assert (sample.payload_format, sample.size, sample.checked_out) == (
        "sqlalchemy-nullpool",
        None,
        3,
    )


def test_helper_json_with_several_engines_is_summed_with_a_note() -> None:
    other = {"size": 5, "checked_out": 1, "checked_in": 4, "overflow": 0, "max_overflow": 0}
    sample = parse(json.dumps({"engines": {"main": HELPER_JSON, "reports": other}}))
    assert (sample.size, sample.checked_out, sample.checked_in, sample.waiting) == (25, 21, 4, None)
    assert sample.holders[0].age_seconds == 912.5
    assert sample.notes == ("summed 2 engines (main, reports); ?engine=NAME selects one",)
    single = parse(json.dumps({"engines": {"main": HELPER_JSON}}))
    assert (single.size, single.notes) == (20, ())


def test_static_pool_is_a_clear_error() -> None:
    with pytest.raises(PayloadError, match="StaticPool reports no pool counters"):
        parse("StaticPool")


def test_psycopg_pool_stats() -> None:
    sample = parse(json.dumps(PSYCOPG_STATS))
    assert sample.payload_format == "psycopg-pool"
    assert (sample.size, sample.max_overflow, sample.checked_out, sample.checked_in) == (
        10,
        0,
        8,
        2,
    )
    assert sample.waiting == 5
    assert sample.counters == {name: float(value) for name, value in PSYCOPG_STATS.items()}


def test_psycopg_pool_stats_with_zero_keys_omitted() -> None:
    sample = parse(json.dumps({"pool_min": 2, "pool_max": 4, "pool_size": 2}))
    assert (sample.size, sample.checked_out, sample.checked_in, sample.waiting) == (4, 2, 0, 0)


def test_psycopg_available_above_size_is_rejected() -> None:
    with pytest.raises(PayloadError, match="pool_available"):
        parse(json.dumps({"pool_max": 4, "pool_size": 1, "pool_available": 3}))


def test_seed_prometheus_gauges() -> None:
    sample = parse(SEED_PROMETHEUS, "text/plain; version=0.0.4; charset=utf-8")
    assert sample.payload_format == "prometheus"
    assert (sample.size, sample.checked_out, sample.checked_in, sample.overflow) == (20, 20, 0, 0)
    assert sample.counters == {}


def test_pooldoctor_prometheus_names() -> None:
    sample = parse(POOLDOCTOR_PROMETHEUS)
    assert (sample.size, sample.checked_out, sample.checked_in, sample.overflow) == (20, 18, 2, -2)
    assert (sample.max_overflow, sample.timeout, sample.waiting) == (10, 30.0, 0)
    assert sample.counters == {
        "checkouts": 5678.0,
        "pool_timeouts": 3.0,
        "invalidations": 1.0,
        "oldest_checkout_age_seconds": 912.5,
    }


def test_prometheus_series_summed_nan_skipped_timestamps_and_odd_labels() -> None:
    body = (
        'sqlalchemy_pool_checked_out{worker="1",path="a b}c"} 3 1700000000000\n'
        'sqlalchemy_pool_checked_out{worker="2",note="say \\"hi\\""} 4 1700000000000\n'
        'sqlalchemy_pool_size{worker="1"} 5\n'
        'sqlalchemy_pool_size{worker="2"} 5\n'
        'sqlalchemy_pool_overflow{worker="1"} NaN\n'
        "db_pool_in_use_ratio +Inf\n"
    )
    sample = parse(body)
    assert (sample.checked_out, sample.size, sample.overflow) == (7, 10, None)
    assert "sqlalchemy_pool_checked_out: summed 2 series" in sample.notes
    assert any(
        "sqlalchemy_pool_overflow: ignored non-finite value(s) NaN" in n for n in sample.notes
    )


def test_prometheus_negative_idle_from_seed_formula_reads_as_zero() -> None:
    sample = parse("db_pool_size_total 20\ndb_pool_checked_out 25\ndb_pool_idle -5\n")
    assert (sample.checked_out, sample.checked_in) == (25, 0)
    assert "read as 0" in sample.notes[0]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        ("", None, "empty body"),
        ("   \n", "application/json", "empty body"),
        ("<!DOCTYPE html><html><title>Sign in</title></html>", "text/html", HTML_MESSAGE),
        ("<html><body>login</body></html>", None, HTML_MESSAGE),
        ("OK", "text/plain", "unrecognised pool-status payload .*'OK'"),
        ("status ok\n", "text/plain", "unrecognised pool-status payload"),
        ("{not json", "application/json", "invalid JSON"),
        ("size=5", "application/json", "content type application/json but the body is not JSON"),
        ("[1, 2]", None, "JSON list, expected an object"),
        ('{"healthy": true, "version": "1.2"}', None, "without pool fields.*healthy, version"),
        ('"hello"', None, "JSON string is not a SQLAlchemy"),
        ('{"size": -1, "checked_out": 0}', None, "size is negative"),
        ('{"size": 5, "checked_out": "twenty"}', None, "checked_out is not a number"),
        ('{"size": 5, "checked_out": true}', None, "checked_out is not a number"),
        ('{"size": 5, "checked_out": 2.5}', None, "checked_out is not a whole number"),
        ('{"size": 5, "checked_out": NaN}', None, "checked_out is not a finite number"),
        ('{"size": 5, "timeout": -3}', None, "timeout is negative"),
        ('{"size": 5, "holders": {"a": 1}}', None, "holders must be a list"),
        ('{"size": 5, "holders": [{"age_seconds": 1}]}', None, r"holders\[0\] must be"),
        ('{"size": 5, "holders": [{"origin": "x", "age_seconds": "old"}]}', None, "age_seconds"),
        ('{"size": 5, "counters": {"checkouts": "many"}}', None, "counters.checkouts"),
        ('{"pool_max": 5, "pool_size": "x"}', None, "pool_size is not a number"),
        (
            "Pool size: 5  Connections in pool: -1 Current Overflow: 0 Current Checked out "
            "connections: 6",
            None,
            "checked_in is negative",
        ),
        ("process_cpu_seconds_total 1.5\n", None, "without pool gauges"),
        ("db_pool_checked_out 2\nthis is not a sample line\n", None, "line 2 is not a sample"),
        (
            "db_pool_size 5\ndb_pool_checked_out many\n",
            None,
            "db_pool_checked_out value is not a number",
        ),
        ("db_pool_checked_out -2\n", None, "db_pool_checked_out is negative"),
        ("db_pool_checked_out 1.5\n", None, "not a whole number"),
    ],
)
def test_invalid_payloads_raise_clear_errors(
    body: str, content_type: str | None, message: str
) -> None:
    with pytest.raises(PayloadError, match=message) as caught:
        parse(body, content_type)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8000/pool-status", "http://127.0.0.1:8000/pool-status"),
        ("https://ops:hunter2@app.internal/pool", "https://ops:***@app.internal/pool"),
        (
            "http://app/pool?token=abc123&verbose=1&api_key=k9&X-Amz-Signature=deadbeef",
            "http://app/pool?token=***&verbose=1&api_key=***&X-Amz-Signature=***",
        ),
        ("http://app/pool?access_token=a.b.c#frag", "http://app/pool?access_token=***#frag"),
        ("http://app/cb#access_token=xyz&state=1", "http://app/cb#access_token=***&state=1"),
        ("http://app/pool?password=&secret=s", "http://app/pool?password=***&secret=***"),
        ("http://ops@app/pool", "http://ops@app/pool"),
        ("http://u:p@[::1/pool?auth=zz", "http://u:***@[::1/pool?auth=***"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    ("name", "sensitive"),
    [
        ("token", True),
        ("Access-Token", True),
        ("apiKey", True),
        ("key", True),
        ("client_secret", True),
        ("sig", True),
        ("Authorization", True),
        ("verbose", False),
        ("pool", False),
        ("format", False),
    ],
)
def test_sensitive_param_names(name: str, sensitive: bool) -> None:
    assert is_sensitive_param(name) is sensitive


def test_dns_failure_is_described() -> None:
    error = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    message = describe_error(error, "app.example.invalid:8000")
    assert message == "DNS lookup failed for app.example.invalid: Name or service not known"


# --- the app's payload schema: written by app/status.py, read back field by field ------------


def _hold_in_finished_threads(engine: Any, count: int, kept: list[Any]) -> None:
    for index in range(count):
        worker = threading.Thread(target=lambda: kept.append(engine.connect()), name=f"req-{index}")
        worker.start()
        worker.join(10)
        assert not worker.is_alive()


def test_every_schema_field_round_trips_from_the_app_to_the_sample() -> None:
    engine = create_engine("sqlite://", poolclass=QueuePool, creator=sqlite_connection,
                           pool_size=20, max_overflow=10, pool_timeout=7)  # fmt: skip
    instrument(engine)
    kept: list[Any] = []
    try:
        _hold_in_finished_threads(engine, 23, kept)
        kept.append(engine.connect())  # one held by this (live) thread
        payload = pool_status(engine)
    finally:
        for connection in kept:
            connection.close()
        uninstrument(engine)
        engine.dispose()
    assert tuple(payload) == POOL_FIELDS
    assert all(tuple(holder) == HOLDER_FIELDS for holder in payload["holders"])
    sample = parse(json.dumps(payload))
    for name in ("size", "checked_out", "checked_in", "overflow", "max_overflow", "timeout"):
        assert getattr(sample, name) == payload[name], name
    assert sample.counters == {k: float(v) for k, v in payload["counters"].items()}
    assert sample.payload_format == "json" and payload["pool_class"] == "QueuePool"
    assert payload["instrumented"] is True
    assert [(h.origin, h.age_seconds, h.thread, h.thread_alive) for h in sample.holders] == [
        tuple(holder.values()) for holder in payload["holders"]
    ]
    assert (sample.holders_total, sample.holders_dead_threads) == (24, 23)
    assert len(sample.holders) == MAX_HOLDERS  # the rest are only counted


def test_an_uninstrumented_payload_reads_as_holders_not_known() -> None:
    """`instrumented: false` travels as holder totals of None: unknown, not zero holders."""
    engine = create_engine("sqlite://", poolclass=QueuePool, creator=sqlite_connection)
    try:
        with engine.connect():
            payload = pool_status(engine)
    finally:
        engine.dispose()
    assert tuple(payload) == POOL_FIELDS and payload["instrumented"] is False
    sample = parse(json.dumps(payload))
    assert (sample.holders_total, sample.holders_dead_threads, sample.holders) == (None, None, ())
    assert sample.checked_out == 1


def test_the_leak_reading_counts_dead_threads_beyond_the_listed_holders() -> None:
    listed = tuple(
        Holder(f"app/orders.py:42 in create_order #{i}", 30.0 - i, f"req-{i}", False)
        for i in range(MAX_HOLDERS)
    )
    samples = [
        PoolSample(at=AT, payload_format="json", size=20, checked_out=30, max_overflow=10,
                   holders=listed, holders_total=30, holders_dead_threads=28)
    ]  # fmt: skip
    incident = evidence(pools=[pool(*samples)])
    leak = read(incident).leak
    assert leak is not None and leak.orphaned_count == 28
    assert "28 connections held by threads that have already finished" in leak.reasons[0]
    assert "8 more beyond the holders the app lists" in leak.reasons[0]


OTEL_EXPORTER_TEXT = """\
# HELP db_client_connection_count The number of connections in the state of the state attribute.
# TYPE db_client_connection_count gauge
db_client_connection_count{db_client_connection_pool_name="hk",db_client_connection_state="used"} 10
db_client_connection_count{db_client_connection_pool_name="hk",db_client_connection_state="idle"} 0
db_client_connection_max{db_client_connection_pool_name="hk"} 10
db_client_connection_pending_requests{db_client_connection_pool_name="hk"} 4
db_client_connection_timeouts_total{db_client_connection_pool_name="hk"} 2
db_client_connection_wait_time_seconds_bucket{db_client_connection_pool_name="hk",le="+Inf"} 7
db_client_connection_wait_time_seconds_sum{db_client_connection_pool_name="hk"} 3.5
db_client_connection_wait_time_seconds_count{db_client_connection_pool_name="hk"} 7
"""


@pytest.mark.parametrize("old_labels", [False, True])
def test_opentelemetry_exporter_text_is_a_pool_payload(old_labels: bool) -> None:
    text = OTEL_EXPORTER_TEXT
    if old_labels:
        text = text.replace("db_client_connection_state=", "state=")
        text = text.replace("db_client_connection_pool_name=", "pool_name=")
    sample = parse_pool_payload(text, "text/plain; version=0.0.4", datetime.now(UTC))
    assert (sample.checked_out, sample.checked_in, sample.capacity, sample.waiting) == (
        10,
        0,
        10,
        4,
    )
    assert sample.counters["pool_timeouts"] == 2
    assert sample.counters["wait_time_seconds_count"] == 7
