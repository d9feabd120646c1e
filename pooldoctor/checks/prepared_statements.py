"""prepared-statements-pgbouncer: prepared statements broken by transaction-mode pooling."""

from __future__ import annotations

from pooldoctor.checks.common import log_finding
from pooldoctor.checks.spec import CheckSpec
from pooldoctor.evidence import LogEvent
from pooldoctor.findings import Finding, Severity
from pooldoctor.readings import Readings

CHECK = "prepared-statements-pgbouncer"


def check(readings: Readings) -> list[Finding]:
    signal = readings.log(LogEvent.PREPARED_STATEMENT)
    finding = log_finding(
        check=CHECK,
        label=readings.label,
        signal=signal,
        what="prepared-statement errors (already exists / does not exist)",
        title="Prepared statements break behind a transaction-mode pooler",
        severity=Severity.WARNING,
        confidence=0.8,
        reasons=(
            "the pattern of a transaction-mode PgBouncer handing the session to another "
            "client between prepare and execute",
        ),
        remediation=(
            "PgBouncer >= 1.21: set max_prepared_statements (e.g. 200)",
            "asyncpg: connect_args={'prepared_statement_cache_size': 0, "
            "'prepared_statement_name_func': lambda: f'__asyncpg_{uuid4()}__'}",
            "psycopg 3: connect_args={'prepare_threshold': None}",
        ),
    )
    return [finding] if finding else []


SPEC = CheckSpec(
    CHECK,
    (CHECK,),
    "Prepared statement already exists / does not exist errors behind a pooler.",
    check,
)
