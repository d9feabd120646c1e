"""--pgbouncer and --prometheus at the CLI edge: bounded when silent, one-line usage errors."""

from __future__ import annotations

import socket
import time

import pytest

from pooldoctor.cli import main
from pooldoctor.collect.options import SourceOptions
from pooldoctor.collect.session import capture
from pooldoctor.evidence import SourceState

JOIN_SECONDS = 30.0
HANG_BOUND_SECONDS = 20.0  # generous: the point is "bounded", not "fast"


def test_silent_pgbouncer_and_prometheus_are_bounded_by_the_timeout() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        started = time.monotonic()
        evidence = capture(
            SourceOptions(
                pgbouncers=(f"host=127.0.0.1 port={port} dbname=pgbouncer user=stats",),
                prometheus=f"http://127.0.0.1:{port}",
                samples=2,
                interval=0.1,
                timeout=1.0,
            )
        )
        elapsed = time.monotonic() - started
    assert elapsed < HANG_BOUND_SECONDS  # bounded, not fast: one timeout per source plus margins
    details = {s.kind: (s.status, s.detail) for s in evidence.sources}
    assert details["pgbouncer"][0] is SourceState.ERROR
    assert "no connection within 1s" in details["pgbouncer"][1]
    assert details["prometheus"][0] is SourceState.ERROR
    assert f"cannot query: no answer within 1s from 127.0.0.1:{port}" in details["prometheus"][1]


@pytest.mark.parametrize("url", ["prometheus:9090", "ftp://prometheus", "http://user:hunter2@"])
def test_a_bad_prometheus_url_is_a_one_line_usage_error(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["diagnose", "--prometheus", url]) == 64
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "is not an http(s) URL" in error
    assert "hunter2" not in error
