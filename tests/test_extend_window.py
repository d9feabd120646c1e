"""`diagnose --extend-up-to`: when the window cannot decide, keep sampling, then judge it whole."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from pooldoctor.cli import main
from pooldoctor.collect.extend import extra_samples, join_captures
from pooldoctor.evidence import evidence_from_json
from pooldoctor.lab.cluster import TempCluster
from tests.evidence_builders import SAMPLE_TIMES, activity, evidence, idle_in_tx, pool, pool_sample
from tests.evidence_builders import postgres as pg_evidence

APP = "billing-api"
HELD = 3
SLOW_REQUEST_SECONDS = 5.0  # the app's requests take seconds: young unchanged transactions can wait
QUEUEPOOL = "QueuePool limit of size 3 overflow 0 reached, connection timed out, timeout 1.00"


def test_joined_captures_are_one_longer_window() -> None:
    first = evidence(
        pools=[pool(pool_sample(SAMPLE_TIMES[0], 3, size=3))],
        pg=pg_evidence(activity(SAMPLE_TIMES[0], [idle_in_tx(1, SAMPLE_TIMES[0])])),
    )
    more = evidence(
        pools=[pool(*(pool_sample(at, 3, size=3) for at in SAMPLE_TIMES[1:]))],
        pg=pg_evidence(
            *(activity(at, [idle_in_tx(1, SAMPLE_TIMES[0])]) for at in SAMPLE_TIMES[1:])
        ),
    )
    joined = join_captures(first, more)
    assert [s.at for s in joined.pools[0].samples] == list(SAMPLE_TIMES)
    assert joined.postgres is not None
    assert [s.at for s in joined.postgres.samples] == list(SAMPLE_TIMES)
    assert joined.started_at == first.started_at and joined.collected_at == more.collected_at
    assert extra_samples(2.0, 0.5) == 4 and extra_samples(0.1, 0.5) == 1


def _app_log(path: Path, now: datetime) -> Path:
    lines = []
    for i in range(50):
        at = now - timedelta(seconds=120 - i)
        stamp = at.strftime("%Y-%m-%d %H:%M:%S,000")
        access = at.strftime("%d/%b/%Y:%H:%M:%S +0000")
        lines.append(
            f'{stamp} INFO app.access: 10.0.0.1 - - [{access}] "GET /invoices HTTP/1.1" 200 12 '
            f'"-" "curl/8" {SLOW_REQUEST_SECONDS:.3f}'
        )
    for seconds in (30, 5):
        stamp = (now - timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S,000")
        lines.append(f"{stamp} ERROR app: GET /invoices failed: TimeoutError: {QUEUEPOOL}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def open_transactions(pg: TempCluster) -> Iterator[None]:
    connections = [psycopg.connect(pg.dsn(application_name=APP)) for _ in range(HELD)]
    try:
        for connection in connections:
            connection.execute("SELECT 1")  # opens the transaction and leaves it idle in it
        time.sleep(0.6)
        yield
    finally:
        for connection in connections:
            connection.close()


@pytest.mark.usefixtures("open_transactions")
def test_diagnose_samples_longer_when_the_window_cannot_decide(
    pg: TempCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _app_log(tmp_path / "app.log", datetime.now(UTC))
    env = tmp_path / "app.env"
    env.write_text("DB_POOL_SIZE=3\nDB_MAX_OVERFLOW=0\nDB_POOL_TIMEOUT=1\n", encoding="utf-8")
    args = ["diagnose", "--dsn", pg.dsn(), "--log", str(log), "--config", str(env)]
    args += ["--samples", "2", "--interval", "0.5", "--format", "json", "--quiet"]
    main([*args, "--out", str(tmp_path / "once")])
    once = json.loads(capsys.readouterr().out)
    assert once["findings"][0]["runbook"] == "idle-in-transaction"
    assert "cannot decide" in once["differential"]["close_call"]
    main([*args, "--extend-up-to", "1.5", "--out", str(tmp_path / "extended")])
    extended = json.loads(capsys.readouterr().out)
    bundle = evidence_from_json((tmp_path / "extended" / "evidence.json").read_text())
    assert bundle.postgres is not None
    assert len(bundle.postgres.samples) == 2 + extra_samples(1.5, 0.5)
    assert extended["differential"]["more_seconds"] < once["differential"]["more_seconds"]
