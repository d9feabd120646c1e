"""prepared-statements-pgbouncer: prepared statements broken by transaction-mode pooling."""

from __future__ import annotations

from pooldoctor.checks.common import app_label, log_finding
from pooldoctor.checks.signals import log_signal
from pooldoctor.evidence import Evidence, LogEvent
from pooldoctor.findings import Finding, Severity

CHECK = "prepared-statements-pgbouncer"


def check(evidence: Evidence) -> list[Finding]:
    signal = log_signal(evidence, LogEvent.PREPARED_STATEMENT)
    finding = log_finding(
        check=CHECK,
        label=app_label(evidence),
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
            "PgBouncer: max_prepared_statements = 200 (the default from 1.24) and RELOAD, no "
            "restart; works for asyncpg from PgBouncer 1.21, for psycopg from PgBouncer 1.22 "
            "with psycopg >= 3.2 and libpq >= 17; SQL-level PREPARE stays untracked",
            "Otherwise asyncpg: connect_args={'prepared_statement_cache_size': 0, "
            "'prepared_statement_name_func': lambda: f'__asyncpg_{uuid4()}__'}",
            "Otherwise psycopg 3: connect_args={'prepare_threshold': None}",
        ),
    )
    return [finding] if finding else []
