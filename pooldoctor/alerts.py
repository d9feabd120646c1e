"""Prometheus alerting rules for pool gauges and PostgreSQL saturation, linked to the runbooks."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_SITE_URL = "https://pooldoctor.example.com/"
RULE_GROUP = "pooldoctor"


@dataclass(frozen=True)
class AlertRule:
    """One alert: its PromQL, how long it must hold, and the runbook it links to."""

    name: str
    expr: str
    duration: str
    severity: str
    runbook: str
    summary: str
    description: str


ALERT_RULES: tuple[AlertRule, ...] = (
    AlertRule(
        name="PoolSaturated",
        expr=(
            "sum by (job, instance, engine) (pooldoctor_pool_checked_out)\n"
            "  / sum by (job, instance, engine) "
            "(pooldoctor_pool_size + pooldoctor_pool_max_overflow) > 0.8"
        ),
        duration="5m",
        severity="warning",
        runbook="pool-undersized",
        summary="Connection pool {{ $labels.engine }} on {{ $labels.instance }} is over 80% used",
        description="{{ $value | humanizePercentage }} of pool capacity is checked out.",
    ),
    AlertRule(
        name="PoolCheckoutsStuck",
        expr="max by (job, instance, engine) (pooldoctor_pool_oldest_checkout_age_seconds) > 300",
        duration="5m",
        severity="critical",
        runbook="connection-leak",
        summary="A connection of pool {{ $labels.engine }} has been checked out for over 5 minutes",
        description="Oldest checkout is {{ $value | humanizeDuration }} old: a leak or a stuck "
        "transaction.",
    ),
    AlertRule(
        name="PoolTimeoutsFiring",
        expr="sum by (job, instance, engine) (rate(pooldoctor_pool_timeouts_total[5m])) > 0",
        duration="2m",
        severity="critical",
        runbook="pool-undersized",
        summary="Requests on {{ $labels.instance }} time out waiting for a pooled connection",
        description="{{ $value | humanize }} pool timeouts per second (QueuePool limit reached).",
    ),
    AlertRule(
        name="PostgresConnectionsNearMax",
        expr=(
            "sum by (instance) (pg_stat_activity_count)\n"
            "  / max by (instance) (pg_settings_max_connections) > 0.85"
        ),
        duration="5m",
        severity="critical",
        runbook="server-max-connections",
        summary="PostgreSQL {{ $labels.instance }} is above 85% of max_connections",
        description="{{ $value | humanizePercentage }} of connection slots are in use.",
    ),
    AlertRule(
        name="PostgresIdleInTransaction",
        expr='max by (instance, datname) (pg_stat_activity_max_tx_duration{state="idle in '
        'transaction"}) > 60',
        duration="2m",
        severity="warning",
        runbook="idle-in-transaction",
        summary="A session on {{ $labels.instance }} is idle in transaction for over a minute",
        description="Oldest idle-in-transaction session: {{ $value | humanizeDuration }}.",
    ),
    AlertRule(
        name="PostgresLockWaits",
        expr='sum by (instance, datname) (pg_locks_count{mode="exclusivelock"}) > 20',
        duration="2m",
        severity="warning",
        runbook="lock-contention",
        summary="Many exclusive locks held on {{ $labels.instance }}",
        description="{{ $value }} exclusive locks: sessions may be queueing behind a blocker.",
    ),
    AlertRule(
        name="PostgresDeadlocks",
        expr="sum by (instance, datname) (rate(pg_stat_database_deadlocks[5m])) > 0",
        duration="1m",
        severity="warning",
        runbook="lock-contention",
        summary="Deadlocks detected in {{ $labels.datname }} on {{ $labels.instance }}",
        description="{{ $value | humanize }} deadlocks per second (SQLSTATE 40P01).",
    ),
    AlertRule(
        name="PostgresLongRunningQueries",
        expr='max by (instance, datname) (pg_stat_activity_max_tx_duration{state="active"}) > 60',
        duration="2m",
        severity="warning",
        runbook="slow-queries",
        summary="A query on {{ $labels.instance }} has been running for over a minute",
        description="Longest active transaction: {{ $value | humanizeDuration }}.",
    ),
    AlertRule(
        name="PostgresConnectErrors",
        expr="sum by (job, instance, engine) (rate(pooldoctor_pool_invalidations_total[5m])) > 0.1",
        duration="5m",
        severity="warning",
        runbook="stale-connections",
        summary="Pooled connections on {{ $labels.instance }} are being invalidated",
        description="{{ $value | humanize }} invalidations per second: the server or network is "
        "cutting connections.",
    ),
    AlertRule(
        name="PgBouncerClientsWaiting",
        expr="sum by (instance, database) (pgbouncer_pools_client_waiting_connections) > 0",
        duration="2m",
        severity="warning",
        runbook="pgbouncer-saturation",
        summary="Clients wait for a server connection in PgBouncer {{ $labels.instance }}",
        description="{{ $value }} clients waiting: the PgBouncer server pool is full.",
    ),
)


def rules_document(site_url: str = DEFAULT_SITE_URL) -> dict[str, object]:
    """The rules file as data, with runbook_url annotations under `site_url`."""
    from pooldoctor.runbooks import runbook_url  # loads YAML: not needed to parse the CLI

    rules = [
        {
            "alert": rule.name,
            "expr": rule.expr,
            "for": rule.duration,
            "labels": {"severity": rule.severity},
            "annotations": {
                "summary": rule.summary,
                "description": rule.description,
                "runbook_url": runbook_url(site_url, rule.runbook),
            },
        }
        for rule in ALERT_RULES
    ]
    return {"groups": [{"name": RULE_GROUP, "rules": rules}]}


def render_rules(site_url: str = DEFAULT_SITE_URL) -> str:
    """The Prometheus rules file as YAML text."""
    import yaml

    header = (
        "# Generated by `pooldoctor alerts --site-url URL`; edit pooldoctor/alerts.py instead.\n"
    )
    return header + yaml.safe_dump(rules_document(site_url), sort_keys=False, width=100)
