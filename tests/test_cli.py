"""The capture and diagnose commands end to end: exit codes, files, one-line errors, hang bounds."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pooldoctor.cli import main
from pooldoctor.collect.options import SourceOptions, default_dsn
from pooldoctor.collect.session import capture
from pooldoctor.evidence import SourceState, evidence_from_json
from pooldoctor.exitcodes import ExitCode
from tests.httpserver import LocalHTTPServer, Response

SCENARIOS = Path(__file__).parent / "data" / "scenarios"
HANG_BOUND_SECONDS = 20.0  # generous: the point is "bounded", not "fast"


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A TCP port that accepts connections into its backlog and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_capture_with_every_source_hanging_finishes_within_its_timeouts(
    http_server: LocalHTTPServer, silent_listener: int, tmp_path: Path
) -> None:
    http_server.routes["/pool-status"] = Response(body="{}", delay=30)
    hanging_log = tmp_path / "app.log"
    hanging_log.write_text("2026-11-21 09:30:01,123 ERROR app: boom\n")
    options = SourceOptions(
        pool_status=(http_server.url("/pool-status"),),
        dsn=f"host=127.0.0.1 port={silent_listener} dbname=app user=app password=s3cret",
        logs=(str(hanging_log),),
        samples=2,
        interval=0.1,
        timeout=1.0,
    )
    started = time.monotonic()
    evidence = capture(options)
    elapsed = time.monotonic() - started
    assert elapsed < HANG_BOUND_SECONDS
    states = {source.kind: source.status for source in evidence.sources}
    assert states["pool_status"] is SourceState.ERROR
    assert states["postgres"] is SourceState.ERROR
    assert states["log"] is SourceState.OK
    assert evidence.postgres is not None and evidence.postgres.connect_failure is not None
    assert evidence.postgres.connect_failure.category == "timeout"
    assert "s3cret" not in json.dumps([s.detail for s in evidence.sources])


def test_capture_then_offline_diagnose_gives_the_same_findings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = SCENARIOS / "lock-contention.json"
    code = main(["diagnose", "--evidence", str(bundle), "--out", str(tmp_path / "a")])
    assert code == ExitCode.CRITICAL
    first = json.loads((tmp_path / "a" / "report.json").read_text())
    rewritten = tmp_path / "a" / "evidence.json"
    assert evidence_from_json(rewritten.read_text()) == evidence_from_json(bundle.read_text())
    capsys.readouterr()
    code = main(["diagnose", "--evidence", str(rewritten), "--format", "json"])
    second = json.loads(capsys.readouterr().out)
    assert code == ExitCode.CRITICAL
    assert [f["id"] for f in second["findings"]] == [f["id"] for f in first["findings"]]
    assert second["findings"][0]["runbook"] == "lock-contention"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "charts",
        "evidence.json",
        "report.html",
        "report.json",
        "report.md",
    ]


def test_nothing_collectable_is_unknown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "diagnose",
            "--pool-status",
            f"http://127.0.0.1:{closed_port()}/pool-status",
            "--dsn",
            f"postgresql://app:pw@127.0.0.1:{closed_port()}/app",
            "--samples",
            "1",
            "--timeout",
            "1",
            "--format",
            "json",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == ExitCode.UNKNOWN
    assert report["status"] == "unknown"
    assert {source["status"] for source in report["sources"]} == {"error"}
    assert (tmp_path / "out" / "report.html").is_file()


def test_capture_writes_evidence_and_refuses_no_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = tmp_path / "app.env"
    env.write_text("DATABASE_POOL_SIZE=20\nDATABASE_MAX_OVERFLOW=10\n")
    out = tmp_path / "evidence.json"
    assert main(["capture", "--config", str(env), "--workers", "4", "--out", str(out)]) == 0
    evidence = evidence_from_json(out.read_text())
    assert evidence.config is not None and evidence.config.pool_size == 20
    assert evidence.config.workers == 4
    capsys.readouterr()
    assert main(["capture", "--out", str(out)]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no sources given" in err


@pytest.mark.parametrize(
    ("content", "code"),
    [
        ("not json at all", ExitCode.INPUT),
        ('{"schema": "pooldoctor.evidence/99"}', ExitCode.INPUT),
        (None, ExitCode.INPUT),
    ],
)
def test_bad_evidence_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, code: int
) -> None:
    path = tmp_path / "evidence.json"
    if content is not None:
        path.write_text(content)
    assert main(["diagnose", "--evidence", str(path)]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pooldoctor: error:")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["diagnose", "--bogus"],
        ["diagnose", "--samples", "0", "--log", "x"],
        ["diagnose", "--since", "yesterday", "--log", "x"],
        ["diagnose", "--log-tz", "Mars/Olympus", "--log", "x"],
        ["diagnose", "--evidence", "x.json", "--log", "y.log"],
        ["alerts", "--site-url", "runbooks.internal"],
    ],
)
def test_usage_errors_exit_64_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pooldoctor: error:")


def test_dsn_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("POOLDOCTOR_DSN", "DATABASE_URL", "PGSERVICE", "PGHOST", "PGDATABASE"):
        monkeypatch.delenv(variable, raising=False)
    assert default_dsn() is None
    monkeypatch.setenv("PGHOST", "db.internal")
    assert default_dsn() == "postgresql://"
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://app@db/app")
    assert default_dsn() == "postgresql+psycopg://app@db/app"
