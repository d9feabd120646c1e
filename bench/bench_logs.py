"""Log classification throughput against `grep -c -F` with the classifier's own literals.

Generates (once, cached under bench/.data/) a realistic mixed log: Python logging lines with
tracebacks, gunicorn access lines and PostgreSQL server lines, about 1.5% of them events.
Size: POOLDOCTOR_BENCH_MB (default 512). collect_logs splits such a file over one process per
core (and reads the app-log records of its last 32 MiB in one more); the same file read from
stdin shows the one-process speed (gzip and pipes get that). Also printed: the app-log record
pass alone, the scan with strstr passes instead of Hyperscan, the CPU with and without
numpy's newline count, the start method, the load.
The target is the issue's: wall time at or under grep's, both cores against grep's one; the
CPU line shows what that ratio would be on otherwise idle cores.
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from pooldoctor.collect.logs import collect_logs, newlines, search
from pooldoctor.collect.logs.catalog import SEARCH_KEYS, classification_literals
from pooldoctor.collect.logs.parallel import _context, process_count
from pooldoctor.collect.logs.records import read_app_log
from pooldoctor.evidence import LogFileEvidence

DEFAULT_MB = 512
TARGET_RATIO = 1.0  # issue 14: a full scan at or under grep -c -F with the same literals
EVENT_SHARE = 0.015
ROUNDS = 3  # best of three, both tools: neither pays for a cold page cache, less for load
DATA_DIR = Path(__file__).parent / ".data"
START = datetime(2024, 12, 5, 0, 0, 0, tzinfo=UTC)
NOW = datetime.now(UTC)

PATHS = ("/api/orders", "/api/items", "/api/users/me", "/health", "/api/cart", "/static/app.js")
QUERIES = (
    "SELECT orders.id, orders.total, orders.created_at FROM orders WHERE orders.user_id = %(p)s",
    "UPDATE carts SET updated_at=now() WHERE carts.id = %(p)s",
    "SELECT items.id, items.name, items.price FROM items WHERE items.sku IN (%(p)s)",
    "INSERT INTO audit_log (user_id, action, detail) VALUES (%(p)s, 'view', '{}')",
)
APP_EVENTS = (
    "sqlalchemy.exc.TimeoutError: QueuePool limit of size 5 overflow 10 reached, connection "
    "timed out, timeout 30.00 (Background on this error at: https://sqlalche.me/e/20/3o7r)",
    "psycopg_pool.PoolTimeout: couldn't get a connection after 30.00 sec",
    "sqlalchemy.exc.OperationalError: (psycopg.OperationalError) consuming input failed: server "
    "closed the connection unexpectedly",
    "psycopg.errors.QueryCanceled: canceling statement due to statement timeout",
    "psycopg.OperationalError: connection timeout expired",
)
PG_EVENTS = (
    "FATAL:  sorry, too many clients already",
    "ERROR:  canceling statement due to lock timeout",
    "ERROR:  deadlock detected",
    "LOG:  process 4242 still waiting for ShareLock on transaction 7781 after 1000.112 ms",
    "FATAL:  terminating connection due to idle-in-transaction timeout",
    "LOG:  unexpected EOF on client connection with an open transaction",
)


def _traceback(rng: random.Random, error: str) -> list[str]:
    return [
        "Traceback (most recent call last):",
        f'  File "/app/shop/views.py", line {rng.randint(10, 400)}, in handler',
        "    with engine.connect() as conn:",
        '  File "/venv/lib/python3.12/site-packages/sqlalchemy/engine/base.py", line 3278, '
        "in connect",
        "    return self._connection_cls(self)",
        error,
    ]


def _lines(rng: random.Random, moment: datetime) -> list[str]:
    """One burst of lines at `moment`: mostly routine, sometimes an event."""
    py = moment.strftime("%Y-%m-%d %H:%M:%S") + f",{moment.microsecond // 1000:03d}"
    pg = moment.strftime("%Y-%m-%d %H:%M:%S") + f".{moment.microsecond // 1000:03d} UTC"
    access = moment.strftime("%d/%b/%Y:%H:%M:%S +0000")
    pid = rng.randint(1000, 60000)
    path = rng.choice(PATHS)
    roll = rng.random()
    if roll < EVENT_SHARE:
        kind = rng.randrange(3)
        if kind == 0:
            error = rng.choice(APP_EVENTS)
            return [f"{py} ERROR shop.views: request failed", *_traceback(rng, error)]
        if kind == 1:
            return [f"{pg} [{pid}] app@shop {rng.choice(PG_EVENTS)}"]
        return [f'10.0.{pid % 250}.7 - - [{access}] "GET {path} HTTP/1.1" 503 0 "-" "k6/0.49"']
    if roll < 0.40:
        ms = rng.randint(2, 900)
        return [f"{py} INFO shop.views: {rng.choice(('GET', 'POST'))} {path} 200 in {ms}ms"]
    if roll < 0.55:
        query = rng.choice(QUERIES) % {"p": rng.randint(1, 99999)}
        return [f"{py} DEBUG sqlalchemy.engine.Engine: {query}"]
    if roll < 0.78:
        size = rng.randint(100, 90000)
        agent = '"Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"'
        return [f'10.0.{pid % 250}.{pid % 200} - - [{access}] "GET {path} HTTP/1.1" 200 {size} '
                f'"https://shop.example.com/" {agent}']  # fmt: skip
    if roll < 0.97:
        query = rng.choice(QUERIES) % {"p": rng.randint(1, 99999)}
        duration = rng.uniform(0.1, 900.0)
        return [f"{pg} [{pid}] app@shop LOG:  duration: {duration:.3f} ms  statement: {query}"]
    if roll < 0.99:
        return [f"{pg} [{pid}] [unknown]@[unknown] LOG:  connection received: host=10.0.3.4 "
                f"port={pid}", f"{pg} [{pid}] app@shop LOG:  connection authorized: user=app "
                "database=shop application_name=web"]  # fmt: skip
    return [f"{py} WARNING shop.cache: cache miss storm on {path}; falling back to database"]


def generate(path: Path, megabytes: int) -> None:
    """Write a deterministic mixed log of about `megabytes` MiB (chronological)."""
    rng = random.Random(20241205)
    target = megabytes * 1024 * 1024
    written = 0
    moment = START
    partial = path.with_suffix(".partial")
    with partial.open("w", encoding="utf-8", newline="\n") as out:
        while written < target:
            batch: list[str] = []
            for _ in range(2000):
                moment += timedelta(microseconds=rng.randint(200, 9000))
                batch.extend(_lines(rng, moment))
            text = "\n".join(batch) + "\n"
            out.write(text)
            written += len(text)
    partial.replace(path)


def _cpu_seconds() -> float:
    """CPU used so far by this process and its finished children (grep, scan workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _best(run: Callable[[], object]) -> tuple[float, float, object]:
    """Best wall-clock and best CPU seconds of ROUNDS runs, and the last result."""
    best = cpu = float("inf")
    result = None
    for _ in range(ROUNDS):
        started, cpu_started = time.perf_counter(), _cpu_seconds()
        result = run()
        best = min(best, time.perf_counter() - started)
        cpu = min(cpu, _cpu_seconds() - cpu_started)
    return best, cpu, result


def _grep(grep: str, patterns: Sequence[bytes], path: Path) -> Callable[[], object]:
    args = [grep, "-c", "-F"]
    for pattern in patterns:
        args += ["-e", pattern.decode("utf-8")]
    args.append(str(path))

    def run() -> object:
        done = subprocess.run(args, capture_output=True, text=True, timeout=3600, check=False)
        return done.stdout.strip()

    return run


def _collect_stdin(path: Path) -> object:
    with path.open("rb") as handle:
        return collect_logs(["-"], log_tz=UTC, since=None, until=None, stdin=handle)


def _without_hyperscan(run: Callable[[], object]) -> Callable[[], object]:
    """`run` with the key search in strstr passes, as where the Hyperscan wheel is missing."""

    def strstr_run() -> object:
        kept = search.MULTI_LITERAL
        search.MULTI_LITERAL = False
        try:
            return run()
        finally:
            search.MULTI_LITERAL = kept

    return strstr_run


def _without_numpy(run: Callable[[], object]) -> Callable[[], object]:
    """`run` with newlines counted by bytes.count, as where numpy is missing."""

    def counting_run() -> object:
        kept = newlines.VECTORISED
        newlines.VECTORISED = False
        try:
            return run()
        finally:
            newlines.VECTORISED = kept

    return counting_run


def _alternating(one: Callable[[], object], other: Callable[[], object]) -> tuple[float, float]:
    """Best CPU seconds of `one` and of `other`, run alternately ROUNDS + 1 times each."""
    best = [float("inf"), float("inf")]
    for _ in range(ROUNDS + 1):
        for index, run in enumerate((one, other)):
            cpu_started = _cpu_seconds()
            run()
            best[index] = min(best[index], _cpu_seconds() - cpu_started)
    return best[0], best[1]


def main() -> int:
    """Generate the log if needed, time grep and collect_logs, print the ratio."""
    megabytes = int(os.environ.get("POOLDOCTOR_BENCH_MB", DEFAULT_MB))
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / f"mixed-{megabytes}mb.log"
    if not path.exists():
        print(f"generating {path} ({megabytes} MiB) ...", flush=True)
        generate(path, megabytes)
    size_mb = path.stat().st_size / 1024 / 1024
    grep = shutil.which("grep")
    if grep is None:
        print("grep not found; cannot measure the baseline")
        return 1
    literals = classification_literals()
    grep_seconds, grep_cpu, grep_count = _best(_grep(grep, literals, path))
    keys_seconds, _, keys_count = _best(_grep(grep, SEARCH_KEYS, path))
    ours_seconds, ours_cpu, evidence = _best(
        lambda: collect_logs([str(path)], log_tz=UTC, since=None, until=None)
    )
    single_seconds, _, _ = _best(lambda: _collect_stdin(path))
    app_seconds, _, _ = _best(
        lambda: read_app_log(str(path), log_tz=UTC, reference=NOW, since=None, until=None)
    )
    strstr_seconds, strstr_cpu, _ = _best(
        _without_hyperscan(lambda: collect_logs([str(path)], log_tz=UTC, since=None, until=None))
    )
    whole = partial(collect_logs, [str(path)], log_tz=UTC, since=None, until=None)
    numpy_cpu, count_cpu = _alternating(whole, _without_numpy(whole))
    assert isinstance(evidence, tuple)
    log = evidence[0]
    assert isinstance(log, LogFileEvidence)
    events = sum(summary.count for summary in log.events)
    ratio = ours_seconds / grep_seconds
    print(f"file: {path.name}, {size_mb:.0f} MiB, {log.lines} lines, {events} events")
    print(f"grep -c -F, {len(literals)} classifier literals: {grep_seconds:.3f}s "
          f"({size_mb / grep_seconds:.0f} MiB/s), {grep_count} matching lines")  # fmt: skip
    print(f"grep -c -F, {len(SEARCH_KEYS)} search keys:        {keys_seconds:.3f}s "
          f"({size_mb / keys_seconds:.0f} MiB/s), {keys_count} matching lines")  # fmt: skip
    print(f"collect_logs, {process_count()} process(es):         {ours_seconds:.3f}s "
          f"({size_mb / ours_seconds:.0f} MiB/s)")  # fmt: skip
    print(f"collect_logs, stdin, one process:      {single_seconds:.3f}s "
          f"({size_mb / single_seconds:.0f} MiB/s)")  # fmt: skip
    print(f"app-log records alone (last 32 MiB; a side process of the parallel scan): "
          f"{app_seconds:.3f}s")  # fmt: skip
    matcher = "Hyperscan" if search.MULTI_LITERAL else "strstr passes (no Hyperscan wheel)"
    print(f"key search: {matcher}; without Hyperscan: {strstr_seconds:.3f}s wall, "
          f"{strstr_cpu:.3f} CPU s")  # fmt: skip
    print(f"newline count: numpy {numpy_cpu:.3f} CPU s, bytes.count {count_cpu:.3f} CPU s "
          "(whole scan, alternating)")  # fmt: skip
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"processes start by {_context().get_start_method()}; load average {load} "
          f"on {os.cpu_count()} cores")  # fmt: skip
    processes = process_count()
    print(f"CPU seconds: grep {grep_cpu:.3f}, collect_logs {ours_cpu:.3f} over {processes} "
          f"process(es): {ours_cpu / processes / grep_cpu:.2f}x grep per core, the wall ratio "
          "on idle cores")  # fmt: skip
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(f"ratio ours/grep (literals): {ratio:.2f} "
          f"(vs search keys: {ours_seconds / keys_seconds:.2f}); "
          f"target <= {TARGET_RATIO:.1f}: {verdict}")  # fmt: skip
    return 0 if ratio <= TARGET_RATIO else 1
