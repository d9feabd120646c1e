"""Effective PgBouncer pool sizes and the server budget behind a PgBouncer fleet (pure)."""

from __future__ import annotations

from dataclasses import replace

from pooldoctor.checks import pgbouncer
from pooldoctor.evidence import PgBouncerDatabase, PgBouncerEvidence, PgBouncerPool
from pooldoctor.readings import pgbouncer as pgbouncer_facts
from pooldoctor.readings.budget import server_budget
from tests.data.checks.cases import _bouncer, healthy, pgbouncer_admin_saturation

SATURATED = [(10, 4, 10, 1.5), (10, 9, 10, 4.0), (10, 14, 10, 7.5)]


def _limit(bouncer: PgBouncerEvidence) -> pgbouncer_facts.PoolLimit:
    sample = bouncer.samples[-1]
    return pgbouncer_facts.pool_limit(bouncer, sample, sample.pools[0])


def test_default_pool_size_plus_reserve() -> None:
    bouncer = _bouncer("transaction", 10, SATURATED)
    bouncer = replace(bouncer, config={**bouncer.config, "reserve_pool_size": "3"})
    limit = _limit(bouncer)
    assert (limit.base, limit.effective) == (10, 13)
    assert limit.arithmetic() == "default_pool_size 10 + reserve_pool_size 3 = 13"


def test_database_pool_size_and_caps() -> None:
    bouncer = _bouncer("transaction", 10, SATURATED)
    sample = bouncer.samples[-1]
    database = PgBouncerDatabase("orders", pool_size=25, reserve_pool=5, max_connections=12)
    bouncer = replace(bouncer, samples=(replace(sample, databases=(database,)),))
    limit = _limit(bouncer)
    assert limit.pool_size == 25 and limit.pool_size_from == "database orders pool_size"
    assert limit.effective == 12
    assert "capped by max_db_connections 12" in limit.arithmetic()
    capped_user = replace(bouncer, config={**bouncer.config, "max_user_connections": "8"})
    assert _limit(capped_user).effective == 8


def test_user_pool_size_wins() -> None:
    bouncer = replace(_bouncer("transaction", 10, SATURATED), users={"api": {"pool_size": "4"}})
    limit = _limit(bouncer)
    assert (limit.pool_size, limit.pool_size_from) == (4, "user api pool_size")


def test_fleet_of_instances_multiplies_the_server_demand() -> None:
    one = _bouncer("transaction", 10, SATURATED)
    two = replace(one, target="host=10.0.0.10 port=6432 user=stats dbname=pgbouncer")
    evidence = replace(pgbouncer_admin_saturation(), pgbouncers=(one, two))
    assert pgbouncer_facts.fleet_server_limits(evidence) == [10, 10]
    budget = server_budget(evidence, None)
    assert budget is not None
    assert (budget.processes, budget.per_process, budget.demand) == (2, 10, 20)
    assert "(10 server connections per PgBouncer)" in budget.arithmetic()
    (finding,) = pgbouncer.SPEC.run(evidence)
    assert "2 PgBouncer instance(s) x 10 = 20" in finding.summary
    assert finding.evidence["saturated_pools"] == [
        "10.0.0.9:6432 orders/api",
        "10.0.0.10:6432 orders/api",
    ]


def test_pgbouncer_server_connections_are_not_counted_as_other_clients() -> None:
    evidence = pgbouncer_admin_saturation()
    plain = server_budget(replace(evidence, pgbouncers=()), None)
    behind = server_budget(evidence, None)
    assert plain is not None and behind is not None
    held = evidence.pgbouncers[0].samples[-1].servers_total
    assert behind.other_clients == max(0, plain.other_clients - held)


def test_waiting_without_servers_at_the_limit_is_not_saturation() -> None:
    rows = [(3, 2, 4, 0.5), (3, 2, 4, 0.9), (3, 2, 4, 1.2)]  # 4 of 10 servers busy
    evidence = replace(healthy(), pgbouncers=(_bouncer("transaction", 10, rows),))
    assert pgbouncer.SPEC.run(evidence) == []


def test_admin_pool_is_ignored() -> None:
    bouncer = _bouncer("transaction", 10, SATURATED)
    sample = bouncer.samples[-1]
    admin = PgBouncerPool("pgbouncer", "pgbouncer", cl_active=1)
    sample = replace(sample, pools=(admin, *sample.pools))
    assert [p.database for p in pgbouncer_facts.app_pools(sample)] == ["orders"]


def test_label_of_uri_and_key_value_targets() -> None:
    bouncer = _bouncer("session", 2, SATURATED)
    assert pgbouncer_facts.label(bouncer) == "10.0.0.9:6432"
    uri = replace(bouncer, target="postgresql://stats:***@pgb.internal:6432/pgbouncer")
    assert pgbouncer_facts.label(uri) == "pgb.internal:6432"
