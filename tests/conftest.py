"""Shared fixtures: a real throwaway PostgreSQL cluster and a real local HTTP server."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pooldoctor.lab.cluster import PostgresUnavailable, TempCluster
from tests.httpserver import LocalHTTPServer, serve_http

pytest_plugins = ["pytester"]


def _start_cluster(settings: dict[str, str] | None = None) -> TempCluster:
    try:
        cluster = TempCluster(settings=settings or {})
    except PostgresUnavailable as exc:
        pytest.fail(f"{exc}")
    cluster.__enter__()
    return cluster


@pytest.fixture(scope="session")
def pg() -> Iterator[TempCluster]:
    """One PostgreSQL cluster shared by the session; tests must clean up what they create."""
    cluster = _start_cluster()
    try:
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture
def make_cluster() -> Iterator[Callable[..., TempCluster]]:
    """Factory for a private cluster with chosen postgresql.conf settings."""
    started: list[TempCluster] = []

    def factory(**settings: str) -> TempCluster:
        cluster = _start_cluster(settings)
        started.append(cluster)
        return cluster

    yield factory
    for cluster in started:
        cluster.cleanup()


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
