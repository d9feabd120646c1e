"""The CLI talks while it works: version, help without Python types, one-line choice errors,
the plain progress line on a non-terminal stderr, --quiet, and a refused source asked once."""

from __future__ import annotations

import json
import re
import socket

import pytest
import typer

from pooldoctor import __version__
from pooldoctor.cli import app, main
from tests.httpserver import LocalHTTPServer, Response


def _command_paths() -> list[list[str]]:
    """Every command and subcommand the CLI registers, so new ones are checked too."""
    root = typer.main.get_command(app)
    paths: list[list[str]] = [[]]
    for name, command in sorted(getattr(root, "commands", {}).items()):
        paths.append([name])
        paths.extend([name, sub] for sub in sorted(getattr(command, "commands", {})))
    return paths


HELP_COMMANDS = _command_paths()
PYTHON_TYPE_NAME = re.compile(r"<(?:list|str|int|float|path|bool)\b|\{[a-z_]+\}")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([flag]) == 0
    assert capsys.readouterr().out == f"pooldoctor {__version__}\n"


def test_every_command_is_checked() -> None:
    assert {"diagnose", "capture", "demo", "scan", "alerts", "runbooks"} <= {
        path[0] for path in HELP_COMMANDS if path
    }
    assert ["runbooks", "show"] in HELP_COMMANDS


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_help_names_meanings_not_python_types(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "-h"]) == 0
    text = capsys.readouterr().out
    assert "Usage: pooldoctor" in text
    assert PYTHON_TYPE_NAME.findall(text) == []


def test_help_metavars_and_full_summaries(capsys: pytest.CaptureFixture[str]) -> None:
    main(["diagnose", "--help"])
    text = capsys.readouterr().out
    for metavar in ("--pool-status URL", "--dsn DSN", "--log FILE", "--samples N"):
        assert metavar in text
    for metavar in ("--interval SECONDS", "--since TIME", "--log-tz TZ", "--out DIR"):
        assert metavar in text
    main(["--help"])
    top = " ".join(capsys.readouterr().out.split())
    assert "rank root causes, write the report." in top
    assert not re.search(r"\w,?\.\.\. ", top.split("Commands:")[1])
    assert "--install-completion" in top


def test_invalid_choice_is_one_line_listing_the_valid_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["diagnose", "--format", "yaml", "--log", "x.log"]) == 64
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "invalid --format 'yaml': choose one of text, md, json, html" in err
    assert "Value error" not in err


def test_progress_line_per_round_on_a_non_terminal_stderr(
    http_server: LocalHTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    status = {"pool_size": 5, "checked_out": 2, "overflow": -3, "max_overflow": 0}
    http_server.routes["/pool-status"] = Response(body=json.dumps(status))
    url = http_server.url("/pool-status")
    args = ["diagnose", "--pool-status", url, "--samples", "2", "--interval", "0"]
    main([*args, "--format", "json"])
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if line.startswith("sampling")] == [
        "sampling 1/2: pool-status ok",
        "sampling 2/2: pool-status ok",
    ]
    main([*args, "--format", "json", "--quiet"])
    assert "sampling" not in capsys.readouterr().err


def test_a_refusing_pool_status_is_asked_once(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/pool-status"
    main(["diagnose", "--pool-status", url, "--samples", "3", "--interval", "0", "-v"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sampling")]
    assert lines[0].startswith("sampling 1/3: pool-status error: connection refused")
    assert lines[1:] == [
        "sampling 2/3: pool-status skipped (refused earlier)",
        "sampling 3/3: pool-status skipped (refused earlier)",
    ]
    assert "not retried after the refusal" in err


def test_a_fleet_of_urls_is_one_summary_per_round(
    http_server: LocalHTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    status = {"pool_size": 5, "checked_out": 2, "overflow": -3, "max_overflow": 0}
    for n in range(7):
        http_server.routes[f"/pool/{n}"] = Response(body=json.dumps(status))
    refusing = f"http://127.0.0.1:{_closed_port()}/pool/x"
    urls = [http_server.url(f"/pool/{n}") for n in range(7)] + [refusing]
    args = [arg for url in urls for arg in ("--pool-status", url)]
    main(["diagnose", *args, "--samples", "2", "--interval", "0", "--format", "json"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("sampling")]
    where = refusing.split("://", 1)[1]
    assert lines[0].startswith(f"sampling 1/2: pool-status error: 1 failed, e.g. {where}: ")
    assert lines[0].endswith("(will not retry); 7/8 ok")
    assert lines[1] == "sampling 2/2: pool-status 7/8 ok, 1 skipped (refused earlier)"
