"""pooldoctor's own visibility: a role without pg_monitor gets a report that says what it missed."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from pooldoctor.cli import main
from pooldoctor.lab.cluster import TempCluster

APP_SESSIONS = 3


def test_report_warns_when_sessions_are_hidden_and_names_the_grant(
    pg_each: TempCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pg = pg_each
    pg.execute("CREATE ROLE pd_oncall LOGIN; CREATE ROLE pd_shop LOGIN")
    held: list[psycopg.Connection[tuple[object, ...]]] = []
    try:
        for _ in range(APP_SESSIONS):
            conn = psycopg.connect(pg.dsn(user="pd_shop", application_name="shop"))
            conn.execute(b"SELECT 1")  # idle in transaction, as another role
            held.append(conn)
        code = main(
            [
                "diagnose",
                "--dsn",
                pg.dsn(user="pd_oncall"),
                "--samples",
                "2",
                "--interval",
                "0.1",
                "--format",
                "json",
                "--out",
                str(tmp_path),
            ]
        )
    finally:
        for conn in held:
            conn.close()
        pg.execute("DROP ROLE pd_oncall; DROP ROLE pd_shop")
    report = json.loads(capsys.readouterr().out)
    markdown = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()

    assert code in (0, 1, 2)
    visibility = report["visibility"]
    assert visibility, report["summary"]
    assert any("pd_shop" in line for line in visibility)
    hidden = int(visibility[0].split("up to ")[1].split()[0])
    assert hidden >= APP_SESSIONS
    assert 'GRANT pg_monitor TO "pd_oncall";' in visibility[-1]
    assert "lower bounds" in report["summary"]
    [stuck] = [k for k in report["key_times"] if k["name"] == "oldest_stuck"]
    assert stuck["complete"] is False and "may be older" in stuck["inferred_from"]
    assert "## Visibility" in markdown and 'GRANT pg_monitor TO "pd_oncall";' in markdown
    assert "<h2>Visibility</h2>" in html


def test_no_visibility_warning_when_the_role_sees_everything(
    pg: TempCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pg.execute("CREATE ROLE pd_shop2 LOGIN")
    conn = psycopg.connect(pg.dsn(user="pd_shop2", application_name="shop"))
    try:
        conn.execute(b"SELECT 1")
        main(["diagnose", "--dsn", pg.dsn(), "--samples", "1", "--format", "json"])
    finally:
        conn.close()
        pg.execute("DROP ROLE pd_shop2")
    report = json.loads(capsys.readouterr().out)
    assert report["visibility"] == []
    assert "lower bounds" not in report["summary"]
