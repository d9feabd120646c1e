"""App-log records: exceptions with their app frames, request times, cancellations, GC moments."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pooldoctor.collect.code import scan_frames
from pooldoctor.collect.logs import collect_logs
from pooldoctor.collect.logs.records import (
    CANCELLED,
    GC_CLEANUP,
    is_app_frame,
    read_app_facts,
    read_app_log,
)

REFERENCE = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)

LOG = b"""\
2026-11-21 09:30:00,120 INFO app.access: 10.0.0.1 - - [21/Nov/2026:09:30:00 +0000] "GET /orders?q=2 HTTP/1.1" 200 12 "-" "curl/8" 0.012
2026-11-21 09:30:00,250 INFO app.access: 10.0.0.1 - - [21/Nov/2026:09:30:00 +0000] "GET /orders HTTP/1.1" 200 12 "-" "curl/8" 30ms
2026-11-21 09:30:01,004 ERROR app: GET /orders failed
Traceback (most recent call last):
  File "/srv/app/web.py", line 80, in handle
    return route(query)
  File "/srv/app/orders.py", line 42, in create_order
    raise OrderRejected(order)
app.orders.OrderRejected: order 17: quantity 500 exceeds the limit 100
2026-11-21 09:30:02,500 ERROR app: GET /audit failed
Traceback (most recent call last):
  File "/srv/app/audit.py", line 10, in audit
    write_audit(entry)
  File "/srv/app/audit.py", line 20, in write_audit
    with engine.begin() as conn:
  File "/venv/lib/python3.11/site-packages/sqlalchemy/pool/impl.py", line 165, in _do_get
    raise exc.TimeoutError(
sqlalchemy.exc.TimeoutError: QueuePool limit of size 3 overflow 0 reached, connection timed out, timeout 1.00
(Background on this error at: https://sqlalche.me/e/20/3o7r)
2026-11-21 09:30:03,000 WARNING app: client disconnected; cancelling GET /search
2026-11-21 09:30:03,100 ERROR sqlalchemy.pool.impl.AsyncAdaptedQueuePool: The garbage collector is trying to clean up non-checked-in connection <AdaptedConnection>
2026-11-21 09:30:04,000 ERROR app: chained
Traceback (most recent call last):
  File "/srv/app/a.py", line 1, in first
    raise KeyError("x")
KeyError: 'x'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/srv/app/b.py", line 2, in second
    raise ValueError("y")
ValueError: y
"""  # noqa: E501


def test_exceptions_keep_type_message_and_innermost_app_frame() -> None:
    facts = read_app_facts(LOG, log_tz=UTC, reference=REFERENCE)
    rejected, timeout, chained = facts.exceptions
    assert rejected.at == datetime(2026, 11, 21, 9, 30, 1, 4000, tzinfo=UTC)
    assert rejected.type == "app.orders.OrderRejected"
    assert rejected.message == "order 17: quantity 500 exceeds the limit 100"
    assert rejected.app_frame == "/srv/app/orders.py:42 in create_order"
    assert rejected.app_frames == ("/srv/app/web.py:80 in handle", rejected.app_frame)
    assert timeout.type == "sqlalchemy.exc.TimeoutError"  # the "Background" line is not it
    assert timeout.app_frame == "/srv/app/audit.py:20 in write_audit"  # not SQLAlchemy's frame
    assert chained.type == "ValueError" and chained.app_frame == "/srv/app/b.py:2 in second"


def test_request_times_from_access_lines_in_seconds_or_ms() -> None:
    facts = read_app_facts(LOG, log_tz=UTC, reference=REFERENCE)
    assert [(r.status, r.seconds) for r in facts.requests] == [(200, 0.012), (200, 0.03)]
    assert facts.requests[0].path == "/orders?q=2"


def test_cancellations_and_gc_cleanups_are_timed_moments() -> None:
    facts = read_app_facts(LOG, log_tz=UTC, reference=REFERENCE)
    kinds = [(m.kind, m.at.second, m.at.microsecond) for m in facts.moments]
    assert kinds == [(CANCELLED, 3, 0), (GC_CLEANUP, 3, 100000)]


def test_window_bounds_apply() -> None:
    since = datetime(2026, 11, 21, 9, 30, 2, tzinfo=UTC)
    facts = read_app_facts(LOG, log_tz=UTC, reference=REFERENCE, since=since)
    assert [e.type for e in facts.exceptions] == ["sqlalchemy.exc.TimeoutError", "ValueError"]
    assert facts.requests == ()


def test_library_frames_are_not_app_frames() -> None:
    assert is_app_frame("/srv/app/orders.py")
    assert not is_app_frame("/usr/lib/python3.11/threading.py")
    assert not is_app_frame("/venv/lib/python3.11/site-packages/sqlalchemy/orm/session.py")
    assert not is_app_frame("<frozen importlib._bootstrap>")


def test_log_collector_attaches_the_records(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(LOG)
    (log,) = collect_logs([str(path)], log_tz=UTC, since=None, until=None)
    assert log.app is not None and len(log.app.exceptions) == 3
    assert read_app_log(str(tmp_path / "missing.log"), log_tz=UTC, reference=REFERENCE,
                        since=None, until=None) is None  # fmt: skip


def test_scan_findings_inside_a_named_frame(tmp_path: Path) -> None:
    source = tmp_path / "orders.py"
    source.write_text(
        "from sqlalchemy.orm import Session\n"
        "\n"
        "def create_order(engine, quantity):\n"
        "    session = Session(engine)\n"
        "    session.execute('INSERT ...')\n"
        "    if quantity > 100:\n"
        "        raise ValueError(quantity)\n"
        "    session.commit()\n"
        "    session.close()\n"
        "\n"
        "def other(engine):\n"
        "    return 1\n",
        encoding="utf-8",
    )
    flags = scan_frames([f"{source}:7 in create_order", f"{source}:12 in other", "nowhere:1 in x"])
    assert [(f.line, f.rule_id) for f in flags] == [(4, "PD101")]
    assert flags[0].frame == f"{source}:7 in create_order"
