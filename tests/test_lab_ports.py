"""Lab servers choose their port again when another process binds it before they start."""

from __future__ import annotations

import socket
import urllib.request

import psycopg

from pooldoctor.lab.cluster import TempCluster
from pooldoctor.lab.pgbouncer import TempPgBouncer
from pooldoctor.lab.prometheus import TempPrometheus
from tests.conftest import server_bindir


def test_a_cluster_s_chosen_port_taken_before_it_binds_is_chosen_again() -> None:
    cluster = TempCluster(bindir=server_bindir("system"))
    taken = cluster.port
    with socket.create_server(("127.0.0.1", taken)), cluster:
        assert cluster.port != taken
        with psycopg.connect(cluster.dsn()) as conn:
            assert conn.execute("SHOW port").fetchone() == (str(cluster.port),)


def test_pgbouncer_s_chosen_port_taken_before_it_binds_is_chosen_again(pg: TempCluster) -> None:
    bouncer = TempPgBouncer(cluster=pg)
    taken = bouncer.port
    with socket.create_server(("127.0.0.1", taken)), bouncer:
        assert bouncer.port != taken
        with psycopg.connect(bouncer.dsn(), autocommit=True) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_prometheus_s_chosen_port_taken_before_it_binds_is_chosen_again() -> None:
    prometheus = TempPrometheus(targets=[])
    taken = prometheus.port
    with socket.create_server(("127.0.0.1", taken)), prometheus:
        assert prometheus.port != taken
        with urllib.request.urlopen(f"{prometheus.url}/-/ready", timeout=10) as response:
            assert response.status == 200
