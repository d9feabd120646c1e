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


# OpenTelemetry semantic-convention series as exporters write them, with the older label
# spellings (`state`, `pool_name`) folded in; `sum without` keeps job, instance and pool labels.
_USED = (
    'db_client_connection_count{db_client_connection_state="used"} '
    'or db_client_connection_count{state="used"}'
)
_POOL_LABELS = "db_client_connection_state, state"

ALERT_RULES: tuple[AlertRule, ...] = (
    AlertRule(
        name="PoolSaturated",
        expr=(
            f"sum without ({_POOL_LABELS}) ({_USED})\n"
            "  / sum without () (db_client_connection_max) > 0.8\n"
            "or\n"
            "sum by (job, instance, engine) (pooldoctor_pool_checked_out)\n"
            "  / sum by (job, instance, engine) "
            "(pooldoctor_pool_size + pooldoctor_pool_max_overflow) > 0.8"
        ),
        duration="5m",
        severity="warning",
        runbook="pool-undersized",
        summary="A connection pool on {{ $labels.instance }} is over 80% used",
        description="{{ $value | humanizePercentage }} of pool capacity is checked out.",
    ),
    AlertRule(
        name="PoolRequestsPending",
        expr="max without () (db_client_connection_pending_requests) > 0",
        duration="2m",
        severity="critical",
        runbook="pool-undersized",
        summary="Requests on {{ $labels.instance }} queue for a pooled connection",
        description="{{ $value }} callers waiting for a connection (pending_requests) for 2 "
        "minutes.",
    ),
    AlertRule(
        name="PoolWaitTimeHigh",
        expr=(
            "histogram_quantile(0.95, sum without (instance_id) "
            "(rate(db_client_connection_wait_time_seconds_bucket[5m]))) > 1"
        ),
        duration="5m",
        severity="warning",
        runbook="pool-undersized",
        summary="Checkouts on {{ $labels.instance }} wait over a second (p95)",
        description="p95 wait for a pooled connection: {{ $value | humanizeDuration }}. Long "
        "waits with short use times mean an undersized pool.",
    ),
    AlertRule(
        name="PoolCheckoutsStuck",
        expr=(
            "rate(db_client_connection_use_time_seconds_sum[5m])\n"
            "  / rate(db_client_connection_use_time_seconds_count[5m]) > 300\n"
            "or\n"
            "max by (job, instance, engine) (pooldoctor_pool_oldest_checkout_age_seconds) > 300"
        ),
        duration="5m",
        severity="critical",
        runbook="connection-leak",
        summary="Connections on {{ $labels.instance }} stay checked out for over 5 minutes",
        description="{{ $value | humanizeDuration }} of use per checkout (or oldest checkout): "
        "a leak or a stuck transaction.",
    ),
    AlertRule(
        name="PoolTimeoutsFiring",
        expr=(
            "sum without () (rate(db_client_connection_timeouts_total[5m])) > 0\n"
            "or\n"
            "sum by (job, instance, engine) (rate(pooldoctor_pool_timeouts_total[5m])) > 0"
        ),
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
        expr=(
            "sum by (instance, database, user) (pgbouncer_pools_client_waiting_connections) > 0\n"
            "and\n"
            "sum by (instance, database, user) (pgbouncer_pools_client_maxwait_seconds) > 1"
        ),
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
