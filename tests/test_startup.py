"""The CLI imports only what the command needs: heavy libraries stay out of --help and check,
and a plain `check` call does not even build typer's validators."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pooldoctor.commands.check import check_command
from pooldoctor.commands.lightargs import parse_plain
from tests.httpserver import LocalHTTPServer, Response
from tests.typer_calls import typer_arguments

HEAVY = ("sqlalchemy", "jinja2", "psycopg", "pooldoctor.lab", "pooldoctor.scan.scanner", "yaml")
# --help needs none of what running a command needs either.
RUN_ONLY = ("rich", "pydantic", "pooldoctor.collect.session", "pooldoctor.report")
# `check` runs every minute from a monitoring agent: it loads no other command's module.
OTHER_COMMANDS = tuple(
    f"pooldoctor.commands.{name}"
    for name in ("diagnose", "capture", "watch", "demo", "scan", "alerts", "runbooks")
)
PROBE = """
import json, sys
from pooldoctor.cli import main
code = main(sys.argv[1:])
heavy = sorted({name for name in sys.modules for root in HEAVY if name == root
                or name.startswith(root + ".")})
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""


def imported_heavy(*args: str, roots: tuple[str, ...] = HEAVY) -> tuple[int, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {roots!r}\n{PROBE}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return report["code"], report["heavy"]


def test_help_imports_nothing_heavy() -> None:
    code, heavy = imported_heavy("--help", roots=HEAVY + RUN_ONLY)
    assert code == 0
    assert heavy == []


def test_check_against_an_endpoint_imports_nothing_heavy(http_server: LocalHTTPServer) -> None:
    payload = {"size": 5, "max_overflow": 0, "checked_out": 1, "overflow": 0, "timeout": 30}
    http_server.routes["/pool-status"] = Response(body=json.dumps(payload))
    url = http_server.url("/pool-status")
    code, heavy = imported_heavy("check", "--pool-status", url, roots=HEAVY + OTHER_COMMANDS)
    assert code == 0
    assert heavy == []


# A plain `check` call skips typer's validators, which import pydantic, and the capture module.
TYPER_VALIDATORS = ("pydantic", "typer._adapters", "pooldoctor.collect.session")


def test_a_plain_check_call_builds_no_typer_validators(http_server: LocalHTTPServer) -> None:
    payload = {"size": 5, "max_overflow": 0, "checked_out": 1, "overflow": 0, "timeout": 30}
    http_server.routes["/pool-status"] = Response(body=json.dumps(payload))
    url = http_server.url("/pool-status")
    args = ("check", "--pool-status", url, "-w", "70", "--critical=90", "--timeout", "2.5")
    code, heavy = imported_heavy(*args, roots=TYPER_VALIDATORS)
    assert code == 0
    assert heavy == []
    # anything unusual goes to typer, which then builds its validators
    code, heavy = imported_heavy("check", "--pool-status", url, "-w", "8e1", roots=TYPER_VALIDATORS)
    assert code == 0
    assert "typer._adapters" in heavy


PLAIN_CALLS = [
    [],
    ["--pool-status", "http://a:8000/pool-status", "--pool-status", "http://b:8000/pool-status"],
    ["--dsn", "postgresql://watch@db/app", "-w", "70", "-c", "90.5", "-t", "0.5"],
    ["--warning=80", "--critical=95", "--samples", "3", "--interval", ".5", "--log", "app.log"],
    ["--waiting-warning", "0", "--idle-in-transaction-critical", "30", "--since", "30m"],
    ["--prometheus", "http://prom:9090", "--pgbouncer", "dbname=pgbouncer", "--log-tz", "UTC"],
]


@pytest.mark.parametrize("argv", PLAIN_CALLS)
def test_the_fast_path_passes_what_typer_passes(argv: list[str]) -> None:
    expected = typer_arguments(argv)
    assert expected is not None  # a plain call typer accepts
    assert parse_plain(check_command, argv) == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["-h"],
        ["--bogus"],
        ["-w", "1e1"],  # a number typer reads but this parser does not: typer decides
        ["-w", "120"],  # out of range: typer's error message
        ["-t5"],
        ["-w=5"],
        ["--samples", "2", "--samples", "3"],
        ["--dsn"],
        ["--dsn", "--log"],
        ["--dsn", ""],
        ["extra"],
    ],
)
def test_anything_unusual_goes_to_typer(argv: list[str]) -> None:
    assert parse_plain(check_command, argv) is None
