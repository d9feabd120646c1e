"""The catalog of log events: exact error strings per event kind, the keys that find them, and
the classification of one candidate line (and making it safe to quote).

Every string comes from FAILURE-MODES.md (library and server sources). Rules are ordered most
specific first; a line gets the first rule that matches. `SEARCH_KEYS` are the few short literals
scanned over whole chunks to find candidate lines: every rule literal contains at least one key
(tests/test_log_patterns.py checks this), so no line holding a literal can be missed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pooldoctor.evidence import LogEvent
from pooldoctor.redact import redact
from pooldoctor.sanitize import strip_controls


@dataclass(frozen=True)
class Rule:
    """One event kind: literals that identify it, and an optional regex a line must also match."""

    event: LogEvent
    literals: tuple[bytes, ...]
    confirm: re.Pattern[bytes] | None = None


E = LogEvent
RULES: tuple[Rule, ...] = (
    Rule(E.POOL_TIMEOUT, (b"reached, connection timed out, timeout",)),
    Rule(E.INVALID_TRANSACTION, (b"Can't reconnect until invalid transaction is rolled back",)),
    Rule(E.GC_CLEANUP, (b"clean up non-checked-in connection",)),
    Rule(E.PSYCOPG_POOL_TIMEOUT, (b"couldn't get a connection after",)),
    Rule(
        E.PSYCOPG_POOL_QUEUE_FULL,
        (b"requests waiting",),
        re.compile(rb"has already \d+ requests waiting"),
    ),
    Rule(E.RESERVED_SLOTS, (b"remaining connection slots are reserved",)),
    Rule(E.ROLE_LIMIT, (b"too many connections for role", b"too many connections for database")),
    Rule(E.TOO_MANY_CLIENTS, (b"too many clients already",)),
    Rule(
        E.IDLE_IN_TRANSACTION_TIMEOUT,
        (b"terminating connection due to idle-in-transaction timeout",),
    ),
    Rule(E.IDLE_SESSION_TIMEOUT, (b"terminating connection due to idle-session timeout",)),
    Rule(E.ADMIN_SHUTDOWN, (b"terminating connection due to administrator command",)),
    Rule(E.STATEMENT_TIMEOUT, (b"canceling statement due to statement timeout",)),
    Rule(
        E.LOCK_TIMEOUT,
        (b"canceling statement due to lock timeout", b"could not obtain lock"),
    ),
    Rule(E.DEADLOCK, (b"deadlock detected",)),
    Rule(
        E.LOCK_WAIT,
        (b"still waiting for",),
        re.compile(rb"still waiting for \w*Lock"),
    ),
    Rule(
        E.CLIENT_EOF_IN_TRANSACTION,
        (b"unexpected EOF on client connection with an open transaction",),
    ),
    Rule(
        E.CANNOT_CONNECT_NOW,
        (
            b"the database system is starting up",
            b"the database system is shutting down",
            b"the database system is in recovery mode",
            b"the database system is not yet accepting connections",
        ),
    ),
    Rule(E.READ_ONLY, (b"in a read-only transaction",)),
    Rule(
        E.PREPARED_STATEMENT,
        (b"prepared statement",),
        re.compile(rb'prepared statement "[^"]*" (?:already exists|does not exist)'),
    ),
    Rule(
        E.PGBOUNCER,
        (
            b"no more connections allowed",
            b"query_wait_timeout",
            b"client_idle_timeout",
            b"idle transaction timeout",
            b"server conn crashed",
            b"pgbouncer cannot connect to server",
        ),
    ),
    Rule(
        E.SSL_ERROR,
        (b"bad record mac", b"SSL SYSCALL error", b"SSL connection has been closed unexpectedly"),
    ),
    Rule(
        E.SERVER_CLOSED,
        (
            b"server closed the connection unexpectedly",
            b"closed the connection",
            b"the connection is lost",
            b"the connection is closed",
            b"connection was closed in the middle of operation",
            b"connection already closed",
            b"connection not open",
            b"could not receive data from server",
            b"could not send data to server",
            b"terminating connection",
        ),
    ),
    Rule(
        E.CONNECT_TIMEOUT,
        (
            b"connection timeout expired",
            b"Couldn't connect to compute node",
            b"timeout expired",
            b"Connection timed out",
        ),
    ),
    Rule(
        E.HTTP_5XX,
        (b'HTTP/1.1" 5', b'HTTP/1.0" 5', b'HTTP/2.0" 5'),
        re.compile(rb'HTTP/[\d.]+" 5\d\d(?!\d)'),
    ),
    Rule(E.SERVER_START, (b"database system is ready to accept",)),
    Rule(E.SERVER_SHUTDOWN, (b"shutdown request",)),
)

# Scanned over whole chunks, one strstr/memmem pass each, so their number and length set the
# scan's cost: a pass costs 15-60 ms per 512 MiB whatever it finds (more when the key starts
# with a letter pair common in the text). A key may cover several literals as long as its other
# hits stay rare (each costs microseconds of Python). glibc's strstr first looks for the key's
# first two bytes, so a key that drops the leading letters of a common pair ("te", "re", "de",
# "sh") and starts at a rarer one ("rm", "dl", "im") makes a pass up to three times faster while
# matching the same lines (the commented keys; measured with `python -m bench logs`).
SEARCH_KEYS: tuple[bytes, ...] = (
    b"timeout",
    b"imed out",  # "timed out"
    b"closed",
    b"too many c",
    b"database system is",
    b"could not ",
    b"nect to",  # "connect to"
    b"nnect until",  # "reconnect until"
    b"ead-only transaction",  # "read-only transaction"
    b"xpected EOF",  # "unexpected EOF"
    b"rminating conn",  # "terminating connection"
    b"dlock det",  # "deadlock detected"
    b" waiting",  # still waiting for, requests waiting
    b"get a connection",
    b"lots are reserved",  # "slots are reserved"
    b"prepared statement",
    b"no more connections",
    b"conn crashed",
    b"bad record mac",
    b"SSL SYSCALL",
    b"the connection is lost",
    b"connection not open",
    b"non-checked-in",
    b'HTTP/1.1" 5',
    b'0" 5',  # HTTP/1.0 and HTTP/2.0
    b"hutdown request",  # "shutdown request"
)


def classification_literals() -> tuple[bytes, ...]:
    """Every exact string the classifier looks for, in rule order (the benchmark greps these)."""
    return tuple(literal for rule in RULES for literal in rule.literals)


def rules_for_keys() -> tuple[tuple[int, ...], ...]:
    """For each search key, the indexes of the rules having a literal that contains it."""
    return tuple(
        tuple(
            index
            for index, rule in enumerate(RULES)
            if any(key in literal for literal in rule.literals)
        )
        for key in SEARCH_KEYS
    )


# SQLSTATE codes name the event when a candidate line carries one in a recognisable form
# (`sqlstate=40P01`, JSON `"pgcode": "55P03"`, verbose `ERROR:  57014: ...`) and no literal did.
SQLSTATE_EVENTS: dict[bytes, LogEvent] = {
    b"57014": E.STATEMENT_TIMEOUT,
    b"55P03": E.LOCK_TIMEOUT,
    b"40P01": E.DEADLOCK,
    b"53300": E.TOO_MANY_CLIENTS,
    b"25P03": E.IDLE_IN_TRANSACTION_TIMEOUT,
    b"57P05": E.IDLE_SESSION_TIMEOUT,
    b"57P01": E.ADMIN_SHUTDOWN,
    b"57P03": E.CANNOT_CONNECT_NOW,
    b"25006": E.READ_ONLY,
}
SQLSTATE_PATTERN = re.compile(
    rb"(?:sqlstate|pgcode|SQLSTATE|error_code)[\"']?\s*[:=]?\s*[\"']?([0-9A-Z]{5})\b"
    rb"|\b[A-Z]+:  ([0-9A-Z]{5}):"
)


# --- classifying one line ------------------------------------------------------------------------

EXAMPLE_MAX_CHARS = 300  # enough for a message and its context; a report is not a log viewer
USER_REQUEST = b"due to user request"  # 57014 also means a cancel the app asked for


Check = tuple[bytes, LogEvent, "re.Pattern[bytes] | None"]


def checks_for(rule_indexes: Sequence[int]) -> tuple[Check, ...]:
    """The (literal, event, confirm) checks of some rules, most specific first."""
    return tuple(
        (literal, RULES[index].event, RULES[index].confirm)
        for index in sorted(rule_indexes)
        for literal in RULES[index].literals
    )


ALL_CHECKS = checks_for(range(len(RULES)))


def classify(line: bytes, checks: Sequence[Check] = ALL_CHECKS) -> LogEvent | None:
    """The first (most specific) check matching the line, else its SQLSTATE, else None."""
    for literal, event, confirm in checks:
        if literal in line and (confirm is None or confirm.search(line)):
            return event
    match = SQLSTATE_PATTERN.search(line)
    if match is None:
        return None
    code = match.group(1) or match.group(2)
    found = SQLSTATE_EVENTS.get(code)
    if found is LogEvent.STATEMENT_TIMEOUT and USER_REQUEST in line:
        return None
    return found


def quote_line(line: bytes, limit: int = EXAMPLE_MAX_CHARS) -> str:
    """A log line as it may appear in evidence: decoded, redacted, truncated."""
    text = strip_controls(line.decode("utf-8", "replace").rstrip("\r\n"))
    text = redact(text[: limit * 2])
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text
