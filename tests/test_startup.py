"""The CLI imports only what the command needs: heavy libraries stay out of --help and check."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.httpserver import LocalHTTPServer, Response

HEAVY = ("sqlalchemy", "jinja2", "psycopg", "pooldoctor.lab", "pooldoctor.scan.scanner", "yaml")
# --help needs none of what running a command needs either.
RUN_ONLY = ("rich", "pydantic", "pooldoctor.collect.session", "pooldoctor.report")
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
    code, heavy = imported_heavy("check", "--pool-status", http_server.url("/pool-status"))
    assert code == 0
    assert heavy == []
