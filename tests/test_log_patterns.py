"""Classification of every event kind from realistic lines; search keys cover every literal."""

from __future__ import annotations

import pytest

from pooldoctor.collect.logs.catalog import (
    RULES,
    SEARCH_KEYS,
    classification_literals,
    classify,
    quote_line,
)
from pooldoctor.evidence import LogEvent as E
from pooldoctor.redact import redact

PG = b"2024-12-05 09:30:01.123 UTC [4242] app@shop "
CASES: list[tuple[bytes, E]] = [
    (b"sqlalchemy.exc.TimeoutError: QueuePool limit of size 5 overflow 10 reached, connection "
     b"timed out, timeout 30.00 (Background on this error at: https://sqlalche.me/e/20/3o7r)",
     E.POOL_TIMEOUT),
    (b"psycopg_pool.PoolTimeout: couldn't get a connection after 30.00 sec",
     E.PSYCOPG_POOL_TIMEOUT),
    (b"psycopg_pool.TooManyRequests: the pool 'web' has already 20 requests waiting",
     E.PSYCOPG_POOL_QUEUE_FULL),
    (b"SAWarning: The garbage collector is trying to clean up non-checked-in connection "
     b"<psycopg.Connection [IDLE] at 0x7f>, which will be terminated.  Please ensure that "
     b"SQLAlchemy pooled connections are returned to the pool explicitly", E.GC_CLEANUP),
    (PG + b"FATAL:  sorry, too many clients already", E.TOO_MANY_CLIENTS),
    (PG + b"FATAL:  remaining connection slots are reserved for roles with the SUPERUSER "
     b"attribute", E.RESERVED_SLOTS),
    (PG + b"FATAL:  remaining connection slots are reserved for non-replication superuser "
     b"connections", E.RESERVED_SLOTS),
    (PG + b'FATAL:  too many connections for role "app"', E.ROLE_LIMIT),
    (PG + b'FATAL:  too many connections for database "shop"', E.ROLE_LIMIT),
    (PG + b"ERROR:  canceling statement due to statement timeout", E.STATEMENT_TIMEOUT),
    (b"psycopg.errors.QueryCanceled: canceling statement due to statement timeout",
     E.STATEMENT_TIMEOUT),
    (PG + b"ERROR:  canceling statement due to lock timeout", E.LOCK_TIMEOUT),
    (PG + b'ERROR:  could not obtain lock on row in relation "orders"', E.LOCK_TIMEOUT),
    (PG + b"ERROR:  deadlock detected", E.DEADLOCK),
    (PG + b"LOG:  process 4242 still waiting for ShareLock on transaction 7781 after 200.1 ms",
     E.LOCK_WAIT),
    (PG + b"FATAL:  terminating connection due to idle-in-transaction timeout",
     E.IDLE_IN_TRANSACTION_TIMEOUT),
    (PG + b"FATAL:  terminating connection due to idle-session timeout", E.IDLE_SESSION_TIMEOUT),
    (PG + b"FATAL:  terminating connection due to administrator command", E.ADMIN_SHUTDOWN),
    (b"psycopg2.OperationalError: server closed the connection unexpectedly", E.SERVER_CLOSED),
    (b"psycopg.OperationalError: the connection is lost", E.SERVER_CLOSED),
    (b"asyncpg.exceptions.ConnectionDoesNotExistError: connection was closed in the middle of "
     b"operation", E.SERVER_CLOSED),
    (PG + b"LOG:  unexpected EOF on client connection with an open transaction",
     E.CLIENT_EOF_IN_TRANSACTION),
    (b"psycopg.errors.ConnectionTimeout: connection timeout expired", E.CONNECT_TIMEOUT),
    (b"psycopg2.OperationalError: timeout expired", E.CONNECT_TIMEOUT),
    (b"ERROR: Couldn't connect to compute node", E.CONNECT_TIMEOUT),
    (PG + b"FATAL:  the database system is starting up", E.CANNOT_CONNECT_NOW),
    (PG + b"ERROR:  cannot execute UPDATE in a read-only transaction", E.READ_ONLY),
    (b'asyncpg.exceptions.DuplicatePreparedStatementError: prepared statement '
     b'"__asyncpg_stmt_a__" already exists', E.PREPARED_STATEMENT),
    (b"ERROR: no more connections allowed (max_client_conn)", E.PGBOUNCER),
    (b"ERROR: query_wait_timeout", E.PGBOUNCER),
    (b"psycopg2.OperationalError: SSL error: decryption failed or bad record mac", E.SSL_ERROR),
    (b"psycopg2.OperationalError: SSL SYSCALL error: EOF detected", E.SSL_ERROR),
    (b"sqlalchemy.exc.PendingRollbackError: Can't reconnect until invalid transaction is rolled "
     b"back.  Please rollback() fully before proceeding (Background on this error at: "
     b"https://sqlalche.me/e/20/8s2b)", E.INVALID_TRANSACTION),
    (b'10.0.0.1 - - [05/Dec/2024:09:30:01 +0000] "GET /x HTTP/1.1" 503 0 "-" "curl"', E.HTTP_5XX),
    (b'INFO:     127.0.0.1:54321 - "GET /items HTTP/1.1" 500 Internal Server Error', E.HTTP_5XX),
    (PG[:-11] + b"LOG:  database system is ready to accept connections", E.SERVER_START),
    (PG[:-11] + b"LOG:  received fast shutdown request", E.SERVER_SHUTDOWN),
    (b'{"msg": "query failed", "error": "timeout", "sqlstate": "57014"}', E.STATEMENT_TIMEOUT),
    (PG + b"ERROR:  40P01: deadlock detected", E.DEADLOCK),
]  # fmt: skip
NOT_EVENTS = [
    b'10.0.0.1 - - [05/Dec/2024:09:30:01 +0000] "GET /5xx HTTP/1.1" 200 503 "-" "curl"',
    PG + b"LOG:  connection received: host=10.0.0.1 port=5555",
    PG + b"ERROR:  canceling statement due to user request",
    b'{"msg": "cancelled", "sqlstate": "57014", "detail": "due to user request"}',
    PG + b"LOG:  could not receive data from client: Connection reset by peer",
    b"2024-12-05 09:30:01,000 INFO app: the timeout is 30s",
    PG + b"LOG:  process 1 still waiting for the bus",
]


@pytest.mark.parametrize(("line", "event"), CASES)
def test_classifies_realistic_lines(line: bytes, event: E) -> None:
    assert classify(line) is event
    assert any(key in line for key in SEARCH_KEYS) or b"sqlstate" in line or b"40P01" in line


@pytest.mark.parametrize("line", NOT_EVENTS)
def test_look_alikes_are_not_events(line: bytes) -> None:
    assert classify(line) is None


def test_every_event_kind_is_covered_by_a_case() -> None:
    assert {event for _, event in CASES} == set(E)
    assert {rule.event for rule in RULES} == set(E)


def test_every_literal_contains_a_search_key() -> None:
    uncovered = [lit for lit in classification_literals() if not any(k in lit for k in SEARCH_KEYS)]
    assert uncovered == []


def test_redaction_hides_passwords() -> None:
    text = redact(
        "connect postgresql+psycopg://app:hunter2@db:5432/shop failed; dsn host=db password=s3cr "
        "user=app; PGPASSWORD='x y' token: abc123"
    )
    assert "hunter2" not in text and "s3cr" not in text and "x y" not in text
    assert "abc123" not in text
    assert "postgresql+psycopg://app:***@db:5432/shop" in text
    assert "password=***" in text


def test_quoted_lines_are_truncated() -> None:
    quoted = quote_line(b"x" * 5000 + b"\n")
    assert len(quoted) == 300 and quoted.endswith("…")
