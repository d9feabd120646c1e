"""The lab: the web app's failure paths for real, bounded load, the slow proxy, and the demo."""

from __future__ import annotations

import io
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest
from rich.console import Console

from pooldoctor.cli import main
from pooldoctor.lab import demo as demo_module
from pooldoctor.lab import webapp
from pooldoctor.lab.cluster import PostgresUnavailable, TempCluster, free_port
from pooldoctor.lab.demo import LAB_DIR_NAME, run_demo
from pooldoctor.lab.load import LoadSpec, request_once, run_load
from pooldoctor.lab.proxy import slow_proxy
from pooldoctor.lab.webapp import APP_ROLE, LabConfig, run_lab_app

QUEUEPOOL_TIMEOUT_TEXT = "QueuePool limit of size 2 overflow 0 reached, connection timed out"


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def _app_backends(cluster: TempCluster, application_name: str) -> list[tuple[int, str]]:
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, state FROM pg_stat_activity WHERE application_name = %s ORDER BY pid",
            (application_name,),
        ).fetchall()
    return [(int(pid), str(state)) for pid, state in rows]


def _wait_until_gone(cluster: TempCluster, application_name: str, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _app_backends(cluster, application_name):
            return True
        time.sleep(0.05)
    return False


def test_every_endpoint_answers_on_a_healthy_pool(pg: TempCluster, tmp_path: Path) -> None:
    config = LabConfig(pool_size=2, max_overflow=0, pool_timeout=2, application_name="lab-ok")
    with run_lab_app(pg, config, tmp_path / "app.log") as app:
        for path in (
            "/health",
            "/quick",
            "/work?ms=5",
            "/orders?quantity=1",
            "/slow?s=0",
            "/external?s=0",
            "/locked",
        ):
            assert request_once(app.url(path), 10) == "200", path
        assert request_once(app.url("/nope"), 5) == "404"
        status = _get_json(app.url("/pool-status"))
    assert status["size"] == 2
    assert status["checked_out"] == 0
    log = (tmp_path / "app.log").read_text()
    assert '"GET /locked HTTP/1.1" 200 ' in log
    assert " INFO lab.lab-ok.access: 127.0.0.1 - - [" in log


def test_orders_error_path_leaks_real_connections(pg: TempCluster, tmp_path: Path) -> None:
    config = LabConfig(pool_size=2, max_overflow=0, pool_timeout=1, application_name="lab-leak")
    log_path = tmp_path / "app.log"
    with run_lab_app(pg, config, log_path) as app:
        assert request_once(app.url("/orders?quantity=500"), 5) == "500"
        assert request_once(app.url("/orders?quantity=501"), 5) == "500"
        backends = _app_backends(pg, "lab-leak")
        status = _get_json(app.url("/pool-status"))
        # The pool is now exhausted by the two leaked sessions: the next request waits, then 3o7r.
        assert request_once(app.url("/quick"), 5) == "500"
    assert [state for _, state in backends] == ["idle in transaction"] * 2
    assert status["checked_out"] == 2
    leaking_line = f"pooldoctor/lab/webapp.py:{_line_in_webapp('order_id = session.execute(')}"
    assert [h["origin"] for h in status["holders"]] == [f"{leaking_line} in _orders"] * 2
    assert status["checked_in"] == 0
    log = log_path.read_text()
    assert "OrderRejected: order " in log
    assert f"sqlalchemy.exc.TimeoutError: {QUEUEPOOL_TIMEOUT_TEXT}, timeout 1.00" in log
    assert '"GET /quick HTTP/1.1" 500 ' in log
    assert _wait_until_gone(pg, "lab-leak"), "stopping the app must release leaked connections"


def _line_in_webapp(text: str) -> int:
    source = Path(webapp.__file__).read_text(encoding="utf-8").splitlines()
    [number] = [index for index, line in enumerate(source, start=1) if text in line]
    return number


def test_leaked_checkouts_outlive_their_request_threads(pg: TempCluster, tmp_path: Path) -> None:
    config = LabConfig(pool_size=2, max_overflow=0, pool_timeout=1, application_name="lab-dead")
    with run_lab_app(pg, config, tmp_path / "app.log") as app:
        assert request_once(app.url("/orders?quantity=500"), 5) == "500"
        assert request_once(app.url("/quick"), 5) == "200"
        deadline = time.monotonic() + 5
        status = _get_json(app.url("/pool-status"))
        while status["holders_dead_threads"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)  # the request's thread ends just after its response is sent
            status = _get_json(app.url("/pool-status"))
    [leaked] = [h for h in status["holders"] if "in _orders" in h["origin"]]
    assert leaked["thread_alive"] is False
    assert status["holders_dead_threads"] == 1
    # The status request's own thread holds nothing: /quick returned its connection.
    assert status["checked_out"] == 1


def test_statement_timeout_and_role_reach_the_server(pg: TempCluster, tmp_path: Path) -> None:
    config = LabConfig(statement_timeout_ms=200, application_name="lab-timeout")
    with run_lab_app(pg, config, tmp_path / "app.log") as app:
        assert app.engine.url.username == APP_ROLE
        assert request_once(app.url("/slow?s=2"), 10) == "500"
    log = (tmp_path / "app.log").read_text()
    assert "canceling statement due to statement timeout" in log


def test_env_text_describes_the_pool() -> None:
    text = LabConfig(pool_size=3, max_overflow=1, statement_timeout_ms=500).env_text(workers=4)
    assert "DB_POOL_SIZE=3\n" in text
    assert "DB_MAX_OVERFLOW=1\n" in text
    assert "DB_STATEMENT_TIMEOUT=500ms\n" in text
    assert "WEB_CONCURRENCY=4\n" in text
    assert "APPLICATION_NAME" not in text
    assert "APPLICATION_NAME=lab-app\n" in LabConfig().env_text(named=True)


def test_load_stops_at_the_request_budget(pg: TempCluster, tmp_path: Path) -> None:
    with run_lab_app(pg, LabConfig(application_name="lab-load"), tmp_path / "app.log") as app:
        spec = LoadSpec(paths=("/health",), clients=3, max_requests=25, max_seconds=30)
        result = run_load(app.url(), spec)
    assert result.total == 25
    assert result.count(200) == 25


def test_load_stops_at_the_time_budget(pg: TempCluster, tmp_path: Path) -> None:
    with run_lab_app(pg, LabConfig(application_name="lab-time"), tmp_path / "app.log") as app:
        spec = LoadSpec(
            paths=("/health",), clients=2, max_requests=100_000, max_seconds=0.5, pause_seconds=0.01
        )
        result = run_load(app.url(), spec)
    assert 0 < result.total < 100_000
    assert result.elapsed_seconds < spec.max_seconds + spec.request_timeout + 1


def test_load_counts_connection_failures() -> None:
    spec = LoadSpec(paths=("/",), clients=1, max_requests=3, max_seconds=5, request_timeout=1)
    result = run_load(f"http://127.0.0.1:{free_port()}", spec)
    assert result.statuses == {"error:ConnectionRefusedError": 3}


@pytest.mark.parametrize(
    "kwargs",
    [{"paths": ()}, {"paths": ("/",), "clients": 0}, {"paths": ("/",), "max_seconds": 0}],
)
def test_load_refuses_unbounded_specs(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        LoadSpec(**kwargs)


def test_slow_proxy_makes_connects_time_out(pg: TempCluster) -> None:
    with slow_proxy(pg.port, delay=4) as proxy:
        dsn = pg.dsn(connect_timeout="2").replace(f"port={pg.port}", f"port={proxy.port}")
        with pytest.raises(psycopg.OperationalError, match="connection timeout expired"):
            psycopg.connect(dsn)


def test_slow_proxy_forwards_after_its_delay(pg: TempCluster) -> None:
    with slow_proxy(pg.port, delay=0.2) as proxy:
        dsn = pg.dsn().replace(f"port={pg.port}", f"port={proxy.port}")
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute("SELECT 41 + 1").fetchone()
    assert row == (42,)


@pytest.mark.slow
def test_demo_diagnoses_the_seed_leak(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    printed = io.StringIO()
    result = run_demo(out, Console(file=printed, width=120))
    names = {str(path.relative_to(out)) for path in result.written}
    assert {"report.md", "report.html", "report.json", "evidence.json"} <= names
    assert {"charts/pool-usage-1.svg", "charts/errors-per-minute.svg"} <= names
    report = json.loads((out / "report.json").read_text())
    assert report["findings"][0]["runbook"] == "connection-leak"
    assert result.diagnosis.findings[0].runbook == "connection-leak"
    assert (out / LAB_DIR_NAME / "orders-api.log").read_text().count("3o7r") > 0
    assert (out / LAB_DIR_NAME / "postgresql.log").exists()
    assert "starting a throwaway PostgreSQL" in printed.getvalue()


def test_demo_without_postgres_is_one_line_and_exit_3(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def unavailable(out: Path) -> None:
        raise PostgresUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found")

    monkeypatch.setattr(demo_module, "run_demo", unavailable)  # the command imports it late
    assert main(["demo", "--out", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "initdb, pg_ctl" in err
