"""Run the real `pooldoctor` CLI (in a child process under memory and time bounds where the
property needs one, else through `main` in this process) and inspect everything it left behind
(stdout, stderr, every file under its output paths)."""

from __future__ import annotations

import multiprocessing
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path

import pytest

from tests.fakepg import serve_tcp

# The child may use this much address space: the interpreter, psycopg, threads' stacks and a
# capped read stay well below it; an unbounded read of /dev/zero would not.
ADDRESS_SPACE_BYTES = 3 * 1024**3
# Every run must end within this (the subprocess timeout, not a speed assertion).
RUN_BOUND_SECONDS = 60.0
SECRET = "S3cretPassw0rd"
DSN_VARIABLES = ("DATABASE_URL", "POOLDOCTOR_DSN")  # a run must not pick up the tester's DSN


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_BYTES, ADDRESS_SPACE_BYTES))


@dataclass
class Run:
    """What one CLI run produced."""

    code: int
    stdout: str
    stderr: str
    files: dict[Path, bytes]

    def outputs(self) -> dict[str, bytes]:
        """Every stream and file, by name."""
        found = {"stdout": self.stdout.encode(), "stderr": self.stderr.encode()}
        found.update({str(path): data for path, data in self.files.items()})
        return found

    def assert_clean(self, *secrets: str) -> None:
        """No traceback, no secret, no terminal escape in any stream or output file."""
        for name, data in self.outputs().items():
            assert b"Traceback" not in data, f"traceback in {name}:\n{data[-2000:]!r}"
            assert b"\x1b" not in data, f"ESC byte in {name}"
            for secret in secrets:
                assert secret.encode() not in data, f"secret {secret!r} in {name}"
        assert "internal error" not in self.stderr, self.stderr

    def report(self, out: Path, name: str = "report.md") -> str:
        return self.files[out / name].decode("utf-8")


def _collect(paths: Sequence[Path]) -> dict[Path, bytes]:
    files: dict[Path, bytes] = {}
    for path in paths:
        if path.is_file():
            files[path] = path.read_bytes()
        elif path.is_dir():
            files.update({p: p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()})
    return files


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pooldoctor", *args]


def run_cli(
    *args: str,
    outputs: Sequence[Path] = (),
    stdin: int | None = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
    timeout: float = RUN_BOUND_SECONDS,
) -> Run:
    """Run `pooldoctor ARGS` bounded in memory and time; collect streams and output files."""
    environment = {**os.environ, "COLUMNS": "200", **(env or {})}
    for name in DSN_VARIABLES:
        environment.pop(name, None)
    completed = subprocess.run(
        command(*args),
        stdin=stdin,
        capture_output=True,
        env=environment,
        timeout=timeout,
        preexec_fn=_limit_memory,
        check=False,
    )
    return Run(
        completed.returncode,
        completed.stdout.decode("utf-8", "replace"),
        completed.stderr.decode("utf-8", "replace"),
        _collect(outputs),
    )


def run_and_signal(
    *args: str,
    when: Callable[[], bool],
    signum: int,
    outputs: Sequence[Path] = (),
    stdin: int | None = subprocess.DEVNULL,
) -> Run:
    """Start the CLI, send `signum` once `when()` holds, and wait for it to end (bounded)."""
    process = subprocess.Popen(
        command(*args),
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
        preexec_fn=_limit_memory,
    )
    deadline = time.monotonic() + RUN_BOUND_SECONDS
    while not when() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # into the blocking call that follows
    process.send_signal(signum)
    try:
        stdout, stderr = process.communicate(timeout=SIGNAL_BOUND_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError(
            f"still running {SIGNAL_BOUND_SECONDS}s after signal {signum}"
        ) from None
    return Run(
        process.returncode,
        stdout.decode("utf-8", "replace"),
        stderr.decode("utf-8", "replace"),
        _collect(outputs),
    )


# A signal must end the run promptly: a bound, generous for a loaded machine.
SIGNAL_BOUND_SECONDS = 10.0
SIGINT = signal.SIGINT
SIGTERM = signal.SIGTERM


@contextmanager
def fake_postgres_refusing(sqlstate: str, message: str) -> Iterator[int]:
    """A TCP peer speaking just enough of the PostgreSQL protocol to refuse every session with
    an ErrorResponse (as a server at max_connections does); yields its port."""

    def error_response() -> bytes:
        fields = b"SFATAL\x00VFATAL\x00C" + sqlstate.encode() + b"\x00M" + message.encode()
        body = fields + b"\x00\x00"
        return b"E" + (len(body) + 4).to_bytes(4, "big") + body

    def serve(conn: socket.socket, _stop: threading.Event) -> None:
        with conn:
            conn.settimeout(5)
            try:
                while True:
                    header = conn.recv(8)
                    if len(header) < 8:
                        return
                    length = int.from_bytes(header[:4], "big")
                    code = int.from_bytes(header[4:8], "big")
                    if length > 8:
                        conn.recv(length - 8)
                    if code in (80877103, 80877104):  # SSLRequest, GSSENCRequest: not here
                        conn.sendall(b"N")
                        continue
                    conn.sendall(error_response())
                    return
            except OSError:
                return

    with serve_tcp(serve) as port:
        yield port


# An in-process run may grow this process's address space by this much, no more: the same kind
# of bound a child's RLIMIT_AS gives (a MemoryError would show as an internal error).
IN_PROCESS_HEADROOM_BYTES = 2 * 1024**3


def _address_space_in_use() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


@contextmanager
def _address_space_headroom(headroom: int) -> Iterator[None]:
    """Lower this process's RLIMIT_AS to what it uses now plus `headroom`, then restore it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _address_space_in_use() + headroom
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def fork_main(*args: str) -> BaseProcess:
    """Start `pooldoctor ARGS` in a forked copy of this process (already imported: no
    interpreter start-up), for cases that need several processes at once; its exitcode is the
    CLI's exit code."""

    def target() -> None:
        from pooldoctor.cli import main

        with open(os.devnull, "w") as sink:
            sys.stdout = sys.stderr = sink
            code = main(list(args))
        os._exit(code)

    process = multiprocessing.get_context("fork").Process(target=target)
    process.start()
    return process


def run_main(capsys: pytest.CaptureFixture[str], *args: str, outputs: Sequence[Path] = ()) -> Run:
    """The same run and checks in this process, through the CLI's `main` with captured streams,
    the child's environment and an address-space bound (IN_PROCESS_HEADROOM_BYTES over what this
    process uses): for every case whose property does not need a child process (a signal, the
    process's exit, or a read that must be bounded well below the headroom)."""
    from pooldoctor.cli import main

    saved = {name: os.environ.get(name) for name in ("COLUMNS", *DSN_VARIABLES)}
    os.environ["COLUMNS"] = "200"
    for name in DSN_VARIABLES:
        os.environ.pop(name, None)
    try:
        capsys.readouterr()
        with _address_space_headroom(IN_PROCESS_HEADROOM_BYTES):
            code = main(list(args))
        captured = capsys.readouterr()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return Run(code, captured.out, captured.err, _collect(outputs))
