"""watch's timeouts/min from the app log: only lines appended while it runs, per minute."""

from __future__ import annotations

from pathlib import Path

from pooldoctor.watch.logtail import LogTail
from pooldoctor.watch.model import PoolRow, with_log_rate

QUEUEPOOL = (
    b"sqlalchemy.exc.TimeoutError: QueuePool limit of size 5 overflow 10 reached, "
    b"connection timed out, timeout 30.00\n"
)
PSYCOPG = b"psycopg_pool.PoolTimeout: couldn't get a connection after 30.00 sec\n"
ROUTINE = b'127.0.0.1 - - "GET /health HTTP/1.1" 200 2\n'


def test_counts_only_timeout_lines_appended_after_the_start(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(QUEUEPOOL * 50 + ROUTINE)  # history before the watch: not this minute
    tail = LogTail((str(log),))
    with log.open("ab") as handle:
        handle.write(QUEUEPOOL)  # before the first poll: its baseline, as a counter's first sample
    tail.poll(10.0)
    assert tail.per_minute(10.0) is None
    with log.open("ab") as handle:
        handle.write(ROUTINE + QUEUEPOOL + PSYCOPG + QUEUEPOOL[:20])  # the last line unfinished
    tail.poll(20.0)
    assert tail.per_minute(20.0) == 2 * 60.0 / 10.0
    with log.open("ab") as handle:
        handle.write(QUEUEPOOL[20:])  # the line completes in the next round: counted once
    tail.poll(30.0)
    assert tail.per_minute(30.0) == 3 * 60.0 / 20.0
    tail.poll(95.0)  # the earlier rounds fall out of the one-minute window
    assert tail.per_minute(95.0) == 0.0


def test_rotation_restarts_at_the_new_file(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(ROUTINE * 100)
    tail = LogTail((str(log),))
    tail.poll(0.0)
    log.write_bytes(QUEUEPOOL)  # rotated: smaller than where we were
    tail.poll(30.0)
    assert tail.per_minute(30.0) == 2.0


def test_unfollowable_logs_leave_the_rate_unknown(tmp_path: Path) -> None:
    tail = LogTail(("-", str(tmp_path / "x.log.gz"), str(tmp_path / "missing.log")))
    tail.poll(0.0)
    tail.poll(10.0)
    assert not tail.following and tail.per_minute(10.0) is None


def test_a_pool_without_a_counter_takes_the_log_rate() -> None:
    counted = PoolRow("http://a", checked_out=3, capacity=10, timeouts_per_minute=1.0)
    plain = PoolRow("http://b", checked_out=3, capacity=10)
    failed = PoolRow("http://c", error="unreachable")
    assert with_log_rate(counted, 4.0) == counted
    assert with_log_rate(plain, 4.0).timeouts_per_minute == 4.0
    assert with_log_rate(plain, 4.0).timeouts_from_log
    assert with_log_rate(plain, None) == plain
    assert with_log_rate(failed, 4.0) == failed
