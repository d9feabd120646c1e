"""The source options are declared once: every sampling command offers them in one order, with
only the differences it declares, and hands its command one RawSourceOptions."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.core import TyperCommand, TyperGroup, TyperOption

from pooldoctor.cli import app
from pooldoctor.collect.options import RawSourceOptions
from pooldoctor.commands import options as opt

SOURCE_FLAGS = [
    "--pool-status",
    "--dsn",
    "--log",
    "--config",
    "--workers",
    "--samples",
    "--interval",
    "--timeout",
    "--since",
    "--until",
    "--log-tz",
    "--pgbouncer",
    "--prometheus",
]
WITHOUT = {"capture": set(), "diagnose": set(), "watch": {"--samples"}, "check": {"--workers"}}


def _options(name: str) -> dict[str, TyperOption]:
    command = typer.main.get_command(app)
    assert isinstance(command, TyperGroup)
    chosen = command.commands[name]
    assert isinstance(chosen, TyperCommand)
    return {p.opts[0]: p for p in chosen.params if isinstance(p, TyperOption)}


@pytest.mark.parametrize("name", sorted(WITHOUT))
def test_each_sampling_command_offers_the_shared_options_in_one_order(name: str) -> None:
    offered = [flag for flag in _options(name) if flag in SOURCE_FLAGS]
    assert offered == [flag for flag in SOURCE_FLAGS if flag not in WITHOUT[name]]


def test_declared_differences_reach_the_signature() -> None:
    check, watch, capture = _options("check"), _options("watch"), _options("capture")
    assert check["--timeout"].opts == ["--timeout", "-t"]
    assert capture["--timeout"].opts == ["--timeout"]
    assert (check["--samples"].default, capture["--samples"].default) == (1, 3)
    assert (watch["--interval"].help or "").startswith("Seconds between rounds")
    assert (capture["--interval"].help or "").startswith("Seconds between samples")


def test_the_command_gets_one_raw_value_with_its_fixed_options() -> None:
    received: list[RawSourceOptions] = []

    @opt.with_sources(fixed={"workers": 7}, defaults={"samples": 2})
    def command(raw_sources: RawSourceOptions, extra: int = 0) -> int:
        received.append(raw_sources)
        return extra

    given: dict[str, Any] = {"pool_status": ["http://a/"], "log": ["app.log"], "samples": 2}
    assert command(**given, extra=5) == 5
    raw = received[0]
    assert (raw.pool_status, raw.logs, raw.workers, raw.samples) == (
        ["http://a/"],
        ["app.log"],
        7,
        2,
    )
