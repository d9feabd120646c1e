"""CLI start-up time: `pooldoctor --help` and a real `pooldoctor check`, against bare Python.

Each command runs as a fresh process, best of ROUNDS, next to `python -c pass` measured in the
same run; CPU seconds are printed too, as they vary less than wall time on a busy machine. The
heaviest imports of `check` come from `python -X importtime`.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TARGET_SECONDS = 0.25  # the brief: `--help` and `check` under a quarter of a second here
ROUNDS = 15  # best of: the machine is shared, the minimum is the start-up cost itself
TOP_IMPORTS = 8
PAYLOAD = json.dumps(
    {"size": 20, "max_overflow": 10, "checked_out": 28, "overflow": 8, "timeout": 30.0}
).encode()


class _PoolStatus(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD)

    def log_message(self, format: str, *args: object) -> None:
        return


@contextmanager
def _pool_status_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PoolStatus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/pool-status"
    finally:
        server.shutdown()
        server.server_close()


def _pooldoctor() -> list[str]:
    return [sys.executable, "-c", "from pooldoctor.cli import main; main()"]


def _best(args: Sequence[str]) -> tuple[float, float]:
    """Best wall-clock and best CPU (user + system) seconds of ROUNDS fresh processes."""
    wall = cpu = float("inf")
    for _ in range(ROUNDS):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(args, capture_output=True, timeout=60, check=False)
        wall = min(wall, time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        cpu = min(cpu, used)
    return wall, cpu


def _heaviest_imports(args: Sequence[str]) -> list[tuple[int, str]]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cumulative, name = line.split("|")
        if name.startswith("  "):
            continue  # top-level imports only: their cumulative time includes the nested ones
        rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:TOP_IMPORTS]


def main() -> int:
    """Time each command, print the figures and whether the target holds."""
    python, python_cpu = _best([sys.executable, "-c", "pass"])
    print(f"python -c pass: {python:.3f}s, {python_cpu:.3f}s CPU (interpreter baseline)")
    failed = False
    with _pool_status_server() as url:
        commands = {
            "pooldoctor --help": [*_pooldoctor(), "--help"],
            "pooldoctor check": [*_pooldoctor(), "check", "--pool-status", url],
            "pooldoctor diagnose --help": [*_pooldoctor(), "diagnose", "--help"],
        }
        for label, args in commands.items():
            seconds, cpu = _best(args)
            verdict = ""
            if label in ("pooldoctor --help", "pooldoctor check"):
                met = seconds < TARGET_SECONDS
                failed |= not met
                verdict = f"; target < {TARGET_SECONDS:.2f}s: {'met' if met else 'NOT met'}"
            print(
                f"{label}: {seconds:.3f}s, {cpu:.3f}s CPU ({seconds / python:.1f}x bare python)"
                f"{verdict}"
            )
        print(
            "heaviest top-level imports of `pooldoctor check` (cumulative, python -X importtime):"
        )
        for micros, name in _heaviest_imports(commands["pooldoctor check"]):
            print(f"  {micros / 1000:7.1f} ms  {name}")
    print(f"(run from {Path.cwd()})")
    return 1 if failed else 0
