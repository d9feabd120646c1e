"""prepared-statements-pgbouncer: prepared statements broken by transaction-mode pooling."""

from __future__ import annotations

from typing import Any

from pooldoctor.checks.common import log_finding
from pooldoctor.checks.spec import CheckSpec
from pooldoctor.evidence import Evidence, LogEvent
from pooldoctor.findings import Finding, Severity
from pooldoctor.readings import Readings
from pooldoctor.readings import pgbouncer as facts

CHECK = "prepared-statements-pgbouncer"
PROTOCOL_PREPARED_VERSION = (1, 21)  # PgBouncer tracks protocol-level prepared statements


def transaction_mode_facts(evidence: Evidence) -> list[dict[str, Any]]:
    """PgBouncers pooling in transaction mode, with their version and max_prepared_statements."""
    rows = []
    for bouncer in facts.sampled(evidence):
        latest = bouncer.samples[-1]
        modes = {facts.pool_mode(bouncer, latest, pool) for pool in facts.app_pools(latest)}
        if not modes:
            modes = {bouncer.config.get("pool_mode", "session")}
        if "transaction" in modes or "statement" in modes:
            rows.append(
                {
                    "pgbouncer": facts.label(bouncer),
                    "version": bouncer.version,
                    "pool_modes": sorted(modes),
                    "max_prepared_statements": bouncer.config.get("max_prepared_statements"),
                }
            )
    return rows


def _describe(row: dict[str, Any]) -> str:
    version = facts.version_tuple(row["version"])
    setting = row["max_prepared_statements"]
    text = (
        f"{row['pgbouncer']} ({row['version'] or 'unknown version'}) pools in "
        + "/".join(row["pool_modes"])
        + " mode"
    )
    if version is not None and version < PROTOCOL_PREPARED_VERSION:
        return text + ", a version without prepared statement support (needs 1.21+)"
    if setting in (None, "0"):
        return text + f", max_prepared_statements = {setting or 'unset'} (support off)"
    return text + f", max_prepared_statements = {setting}"


def check(readings: Readings) -> list[Finding]:
    signal = readings.log(LogEvent.PREPARED_STATEMENT)
    bouncers = transaction_mode_facts(readings.evidence)
    reasons = [_describe(row) for row in bouncers] or [
        "the pattern of a transaction-mode PgBouncer handing the session to another "
        "client between prepare and execute",
    ]
    finding = log_finding(
        check=CHECK,
        label=readings.label,
        signal=signal,
        what="prepared-statement errors (already exists / does not exist)",
        title="Prepared statements break behind a transaction-mode pooler",
        severity=Severity.CRITICAL if bouncers else Severity.WARNING,
        confidence=0.9 if bouncers else 0.8,
        reasons=reasons,
        evidence={"pgbouncers": bouncers} if bouncers else None,
        remediation=(
            "PgBouncer >= 1.21: max_prepared_statements = 200 (the default from 1.24) and RELOAD, "
            "no restart: PgBouncer re-prepares statements on whichever server connection a client "
            "gets; 1.22+ also handles DEALLOCATE ALL / DISCARD ALL; SQL-level PREPARE stays "
            "untracked",
            "psycopg 3: prepares can stay on behind PgBouncer >= 1.22 only with psycopg >= 3.2 "
            "built on libpq >= 17 (it closes prepared statements at protocol level); otherwise "
            "connect_args={'prepare_threshold': None}",
            "asyncpg: connect_args={'prepared_statement_cache_size': 0, "
            "'prepared_statement_name_func': lambda: f'__asyncpg_{uuid4()}__'}",
        ),
    )
    return [finding] if finding else []


SPEC = CheckSpec(
    CHECK,
    (CHECK,),
    "Prepared statement errors from the driver behind a transaction-mode PgBouncer "
    "(version and max_prepared_statements from the admin console).",
    check,
)
