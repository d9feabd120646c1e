"""Shared fixtures: a real throwaway PostgreSQL cluster and a real local HTTP server."""

from __future__ import annotations

from collections.abc import Callable, Iterator

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
