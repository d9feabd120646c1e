"""The PostgreSQL collector against a real server: the very conditions the checks look for."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import psycopg
import pytest

from pooldoctor.checks.registry import check_named
from pooldoctor.collect.postgres import (
    PostgresProbe,
    classify_connect_error,
    connect_failure_reason,
    open_postgres,
)
from pooldoctor.collect.sql import redact_literals, shorten_query
from pooldoctor.evidence import (
    ActivitySample,
    Backend,
    ConnectionLimit,
    LogEvent,
    PostgresEvidence,
    SourceState,
)
from pooldoctor.jsonio import dumps_dataclass, loads_dataclass
from pooldoctor.lab.cluster import TempCluster, free_port
from tests.backends import wait_for_backends
from tests.evidence_builders import ago, events, log_file
from tests.evidence_builders import evidence as build_evidence

TIMEOUT = 3.0
WAIT_SECONDS = 10.0  # upper bound for any condition a test waits for on the server


@pytest.fixture
def pg(pg_each: TempCluster) -> TempCluster:
    """Every collector test runs on each PostgreSQL major (system 15, wheel 18)."""
    return pg_each


@pytest.fixture
def make_cluster(
    make_cluster_each: Callable[..., TempCluster],
) -> Callable[..., TempCluster]:
    return make_cluster_each


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition` until it holds; fail after WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def server_shows(cluster: TempCluster, sql: str, *params: object) -> bool:
    """Ask the server, as superuser, a yes/no question; no free slot counts as no."""
    try:
        with psycopg.connect(cluster.dsn(), autocommit=True) as admin:
            row = admin.execute(sql.encode(), params).fetchone()
            return bool(row and row[0])
    except psycopg.OperationalError:
        return False


def backend(sample: ActivitySample, pid: int) -> Backend:
    found = [b for b in sample.backends if b.pid == pid]
    assert len(found) == 1, f"pid {pid} not in sample: {[b.pid for b in sample.backends]}"
    return found[0]


@pytest.fixture
def probes() -> Iterator[Callable[..., PostgresProbe]]:
    """open_postgres, with every probe finished at teardown."""
    opened: list[PostgresProbe] = []

    def factory(dsn: str, timeout: float = TIMEOUT) -> PostgresProbe:
        probe = open_postgres(dsn, timeout)
        opened.append(probe)
        return probe

    yield factory
    for probe in opened:
        probe.finish()


@pytest.fixture
def connections() -> Iterator[Callable[..., psycopg.Connection[tuple[object, ...]]]]:
    """psycopg connections that are closed at teardown."""
    opened: list[psycopg.Connection[tuple[object, ...]]] = []

    def factory(dsn: str, autocommit: bool = False) -> psycopg.Connection[tuple[object, ...]]:
        conn = psycopg.connect(dsn, autocommit=autocommit)
        opened.append(conn)
        return conn

    yield factory
    for conn in opened:
        conn.close()


@contextlib.contextmanager
def login_role(cluster: TempCluster, name: str, options: str = "") -> Iterator[str]:
    cluster.execute(f"CREATE ROLE {name} LOGIN {options}")
    try:
        yield name
    finally:
        cluster.execute(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}'"
        )
        cluster.execute(f"DROP ROLE {name}")


@contextlib.contextmanager
def background_statement(conn: psycopg.Connection[tuple[object, ...]], sql: str) -> Iterator[None]:
    """Run `sql` on `conn` in a thread; at exit cancel it if still running and join."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            conn.execute(sql.encode())
        except psycopg.Error as exc:
            failures.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        if thread.is_alive():
            conn.cancel_safe(timeout=TIMEOUT)
        thread.join(WAIT_SECONDS)
        assert not thread.is_alive()


# -- opening and reading the server once ---------------------------------------------------


def test_open_reads_server_facts_and_round_trips_as_json(
    pg: TempCluster, probes: Callable[..., PostgresProbe]
) -> None:
    probe = probes(pg.url())
    probe.sample()
    evidence = probe.finish()

    assert evidence.connect_failure is None
    assert evidence.connect_seconds is not None and evidence.connect_seconds > 0
    assert evidence.target == f"postgresql+psycopg://postgres@127.0.0.1:{pg.port}/postgres"
    assert evidence.current_user == "postgres" and evidence.is_superuser is True
    assert evidence.server_version_num is not None and evidence.server_version_num >= 150000
    assert evidence.settings["max_connections"] == "40"
    assert evidence.settings["superuser_reserved_connections"] == "3"
    assert evidence.settings["deadlock_timeout"] == "200ms"
    assert evidence.settings["log_lock_waits"] == "on"
    assert evidence.settings["server_version"] == evidence.server_version
    assert evidence.in_recovery is False
    # pooldoctor's own session is read-only; the evidence is what a fresh session gets
    assert evidence.settings["default_transaction_read_only"] == "off"
    has_reserved = evidence.server_version_num >= 160000
    assert ("reserved_connections" in evidence.settings) is has_reserved
    assert len(evidence.samples) == 1 and evidence.errors == ()
    assert loads_dataclass(PostgresEvidence, dumps_dataclass(evidence)) == evidence
    status = probe.status()
    assert status.kind == "postgres" and status.status is SourceState.OK
    assert status.detail.startswith("connected in ") and "as postgres, 1 sample" in status.detail
    assert probe.finish() is evidence


def test_probe_session_is_read_only_and_bounded(
    pg: TempCluster, probes: Callable[..., PostgresProbe]
) -> None:
    probe = probes(pg.dsn(), timeout=2.5)
    pid = probe.backend_pid
    assert pid is not None
    assert server_shows(
        pg,
        "SELECT count(*) = 1 FROM pg_stat_activity WHERE pid = %s AND application_name = %s",
        pid,
        "pooldoctor",
    )
    conn = probe._connection  # the probe's own session: only it can report its settings
    assert conn is not None
    shown = {
        name: conn.execute(f"SHOW {name}".encode()).fetchone()
        for name in ("transaction_read_only", "statement_timeout", "lock_timeout")
    }
    assert shown == {
        "transaction_read_only": {"transaction_read_only": "on"},
        "statement_timeout": {"statement_timeout": "2500ms"},
        "lock_timeout": {"lock_timeout": "500ms"},
    }
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute(b"CREATE TABLE pooldoctor_must_not_write (id int)")
    # The settings evidence is what the server gives a fresh session, not pooldoctor's own SETs.
    assert probe.finish().settings["statement_timeout"] == "0ms"


def test_a_primary_set_read_only_is_told_apart_from_a_failover(
    pg: TempCluster, probes: Callable[..., PostgresProbe]
) -> None:
    """25006 with default_transaction_read_only = on on a primary (a full disk on a managed
    service): the finding says not to recycle the pool, which would only reconnect read-only."""
    pg.execute("CREATE DATABASE pd_readonly")
    pg.execute("ALTER DATABASE pd_readonly SET default_transaction_read_only = on")
    try:
        probe = probes(pg.dsn(dbname="pd_readonly"))
        evidence = probe.finish()
    finally:
        pg.execute("DROP DATABASE pd_readonly")
    assert evidence.in_recovery is False
    assert evidence.settings["default_transaction_read_only"] == "on"
    line = "ERROR:  cannot execute UPDATE in a read-only transaction"
    logs = (log_file(events(LogEvent.READ_ONLY, 40, last=ago(5), minutes=8, examples=[line])),)
    [found] = check_named("failover-read-only").run(build_evidence(pg=evidence, logs=logs))
    assert "set read-only" in found.title
    assert found.remediation[0].startswith("Do not recycle the pool")


def test_finish_is_idempotent_and_sampling_after_it_does_nothing(
    pg: TempCluster, probes: Callable[..., PostgresProbe]
) -> None:
    probe = probes(pg.dsn())
    first = probe.finish()
    probe.sample()
    assert probe.finish() is first
    assert first.samples == () and probe.backend_pid is None


# -- activity samples: the conditions the checks diagnose -----------------------------------


def test_leaked_idle_in_transaction_keeps_its_xact_start(
    pg: TempCluster,
    probes: Callable[..., PostgresProbe],
    connections: Callable[..., psycopg.Connection[tuple[object, ...]]],
) -> None:
    leaked = connections(pg.dsn())
    leaked.execute(b"SELECT 'leaked', 42")  # starts a transaction nobody ends
    probe = probes(pg.dsn())
    for _ in range(3):
        probe.sample()
        time.sleep(0.1)
    evidence = probe.finish()

    rows = [backend(sample, leaked.info.backend_pid) for sample in evidence.samples]
    assert [r.state for r in rows] == ["idle in transaction"] * 3
    assert len({r.xact_start for r in rows}) == 1 and rows[0].xact_start is not None
    began = rows[0].xact_start
    ages = [sample.at - began for sample in evidence.samples]
    assert ages[0] < ages[1] < ages[2]
    assert rows[0].query == "SELECT ?, ?"
    assert rows[0].application_name is None and rows[0].client_addr == "127.0.0.1"
    own = {
        b.pid for s in evidence.samples for b in s.backends if b.application_name == "pooldoctor"
    }
    assert own == set()


def test_lock_wait_names_its_blocker(
    pg: TempCluster,
    probes: Callable[..., PostgresProbe],
    connections: Callable[..., psycopg.Connection[tuple[object, ...]]],
) -> None:
    pg.execute("CREATE TABLE pd_lock_wait (id int PRIMARY KEY, v int)")
    pg.execute("INSERT INTO pd_lock_wait VALUES (1, 0)")
    try:
        blocker = connections(pg.dsn())
        blocker.execute(b"UPDATE pd_lock_wait SET v = v + 1 WHERE id = 1")
        waiter = connections(pg.dsn(), autocommit=True)
        waiter.execute(b"SET lock_timeout = '20s'")
        with background_statement(waiter, "UPDATE pd_lock_wait SET v = v + 2 WHERE id = 1"):
            wait_until(
                lambda: server_shows(
                    pg,
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                    waiter.info.backend_pid,
                ),
                "the UPDATE to wait for the row lock",
            )
            probe = probes(pg.dsn())
            probe.sample()
            blocker.rollback()
        sample = probe.finish().samples[0]
    finally:
        pg.execute("DROP TABLE pd_lock_wait")

    waiting = backend(sample, waiter.info.backend_pid)
    assert waiting.state == "active"
    assert waiting.wait_event_type == "Lock" and waiting.wait_event == "transactionid"
    assert waiting.blocking_pids == (blocker.info.backend_pid,)
    assert waiting.query == "UPDATE pd_lock_wait SET v = v + ? WHERE id = ?"
    assert waiting.lock_wait_start is not None  # pg_locks.waitstart, PostgreSQL 14+
    assert waiting.query_start is not None and waiting.lock_wait_start >= waiting.query_start
    holding = backend(sample, blocker.info.backend_pid)
    assert holding.state == "idle in transaction" and holding.blocking_pids == ()
    assert holding.lock_wait_start is None


def test_long_active_query_shows_an_old_query_start(
    pg: TempCluster,
    probes: Callable[..., PostgresProbe],
    connections: Callable[..., psycopg.Connection[tuple[object, ...]]],
) -> None:
    sleeper = connections(pg.dsn(), autocommit=True)
    with background_statement(sleeper, "SELECT pg_sleep(30) /* route=/reports */"):
        wait_until(
            lambda: server_shows(
                pg,
                "SELECT state = 'active' FROM pg_stat_activity WHERE pid = %s",
                sleeper.info.backend_pid,
            ),
            "pg_sleep to be running",
        )
        time.sleep(0.3)
        probe = probes(pg.dsn())
        probe.sample()
    sample = probe.finish().samples[0]

    sleeping = backend(sample, sleeper.info.backend_pid)
    assert sleeping.state == "active" and sleeping.backend_type == "client backend"
    assert sleeping.query == "SELECT pg_sleep(?) /* route=/reports */"
    assert sleeping.query_start is not None
    assert sample.at - sleeping.query_start >= timedelta(seconds=0.3)
    assert sleeping.wait_event_type == "Timeout" and sleeping.blocking_pids == ()


def test_role_at_its_connection_limit(
    pg: TempCluster,
    probes: Callable[..., PostgresProbe],
    connections: Callable[..., psycopg.Connection[tuple[object, ...]]],
) -> None:
    with login_role(pg, "pd_limited", "CONNECTION LIMIT 1"):
        connections(pg.dsn(user="pd_limited"))
        limits = probes(pg.dsn()).finish().limits
        assert ConnectionLimit("role", "pd_limited", 1, 1) in limits

        refused = probes(pg.dsn(user="pd_limited"))
        failure = refused.finish().connect_failure
        assert failure is not None
        assert (failure.category, failure.sqlstate) == ("role_connection_limit", "53300")
        assert refused.status().status is SourceState.ERROR
        assert refused.status().detail == (
            'role_connection_limit: too many connections for role "pd_limited" (53300)'
        )


def test_database_at_its_connection_limit(
    pg: TempCluster,
    probes: Callable[..., PostgresProbe],
    connections: Callable[..., psycopg.Connection[tuple[object, ...]]],
) -> None:
    pg.execute("CREATE DATABASE pd_limited_db CONNECTION LIMIT 1")
    try:
        with login_role(pg, "pd_db_user"):
            held = connections(pg.dsn(user="pd_db_user", dbname="pd_limited_db"))
            limits = probes(pg.dsn()).finish().limits
            assert ConnectionLimit("database", "pd_limited_db", 1, 1) in limits
            # Superusers are exempt from database limits: try as the ordinary role.
            refused = probes(pg.dsn(user="pd_db_user", dbname="pd_limited_db"))
            failure = refused.finish().connect_failure
            assert failure is not None
            assert (failure.category, failure.sqlstate) == ("database_connection_limit", "53300")
            held.close()
    finally:
        pg.execute("DROP DATABASE pd_limited_db WITH (FORCE)")


def test_server_at_max_connections(
    make_cluster: Callable[..., TempCluster],
    probes: Callable[..., PostgresProbe],
    connections: Callable[..., psycopg.Connection[tuple[object, ...]]],
) -> None:
    cluster = make_cluster(max_connections="6", superuser_reserved_connections="2")
    cluster.execute("CREATE ROLE app LOGIN")
    # Every step waits for closed and refused backends to exit: until then they hold a slot.
    wait_for_backends(cluster)
    held = [connections(cluster.dsn(user="app")) for _ in range(4)]  # every non-superuser slot
    held_pids = [conn.info.backend_pid for conn in held]
    wait_for_backends(cluster, held_pids)

    refused = probes(cluster.dsn(user="app"))
    failure = refused.finish().connect_failure
    assert failure is not None
    assert (failure.category, failure.sqlstate) == ("reserved_slots", "53300")
    assert "remaining connection slots are reserved" in failure.message

    wait_for_backends(cluster, held_pids)
    admin = probes(cluster.dsn())
    admin.sample()
    evidence = admin.finish()
    assert evidence.connect_failure is None
    app_backends = [b for b in evidence.samples[0].backends if b.usename == "app"]
    assert [b.state for b in app_backends] == ["idle"] * 4

    wait_for_backends(cluster, held_pids)
    for _ in range(2):  # now fill the reserved slots too
        connections(cluster.dsn())
    full = probes(cluster.dsn())
    failure = full.finish().connect_failure
    assert failure is not None
    assert (failure.category, failure.sqlstate) == ("too_many_clients", "53300")
    assert full.status().detail == "too_many_clients: sorry, too many clients already (53300)"


def test_non_superuser_sees_other_roles_queries_as_hidden(
    pg: TempCluster,
    probes: Callable[..., PostgresProbe],
    connections: Callable[..., psycopg.Connection[tuple[object, ...]]],
) -> None:
    other = connections(pg.dsn(), autocommit=True)
    other.execute(b"SELECT 'secret payload'")
    with login_role(pg, "pd_viewer"):
        own = connections(pg.dsn(user="pd_viewer"), autocommit=True)
        own.execute(b"SELECT 'mine'")
        probe = probes(pg.dsn(user="pd_viewer"))
        probe.sample()
        evidence = probe.finish()
    assert evidence.errors == () and evidence.is_superuser is False
    assert probe.status().status is SourceState.OK
    sample = evidence.samples[0]
    hidden = backend(sample, other.info.backend_pid)
    assert hidden.query is None and hidden.query_hidden is True
    assert hidden.usename == "postgres" and hidden.datname == "postgres"
    visible = backend(sample, own.info.backend_pid)
    assert visible.query == "SELECT ?" and visible.query_hidden is False


def test_connection_lost_mid_run_is_recorded_not_raised(
    pg: TempCluster, probes: Callable[..., PostgresProbe]
) -> None:
    probe = probes(pg.dsn())
    probe.sample()
    pid = probe.backend_pid
    assert server_shows(pg, "SELECT pg_terminate_backend(%s)", pid)
    probe.sample()
    probe.sample()  # after the loss: no query, no new error
    evidence = probe.finish()
    assert len(evidence.samples) == 1
    assert len(evidence.errors) == 1
    assert evidence.errors[0].startswith("sample 2: connection lost: ")
    assert "terminating connection due to administrator command" in evidence.errors[0]
    status = probe.status()
    assert status.status is SourceState.OK and "1 error(s)" in status.detail


def test_failing_query_is_recorded_and_sampling_goes_on(
    make_cluster: Callable[..., TempCluster], probes: Callable[..., PostgresProbe]
) -> None:
    cluster = make_cluster()
    cluster.execute("CREATE ROLE pd_app LOGIN")
    probe = probes(cluster.dsn(user="pd_app"))
    probe.sample()
    cluster.execute("REVOKE EXECUTE ON FUNCTION pg_blocking_pids(integer) FROM PUBLIC")
    probe.sample()
    cluster.execute("GRANT EXECUTE ON FUNCTION pg_blocking_pids(integer) TO PUBLIC")
    probe.sample()
    evidence = probe.finish()
    assert len(evidence.samples) == 2
    assert evidence.errors == ("sample 2: permission denied for function pg_blocking_pids (42501)",)


# -- connect failures -----------------------------------------------------------------------


def test_listener_that_never_answers_times_out(probes: Callable[..., PostgresProbe]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # the kernel completes handshakes; nobody ever answers
        port = listener.getsockname()[1]
        began = time.monotonic()
        probe = probes(f"host=127.0.0.1 port={port} user=app dbname=app", timeout=1)
        elapsed = time.monotonic() - began
    failure = probe.finish().connect_failure
    assert failure is not None and failure.category == "timeout"
    assert elapsed < 5, f"open_postgres took {elapsed:.1f}s with timeout=1"
    assert probe.status().detail.startswith("timeout: ")


def test_closed_port_is_refused(probes: Callable[..., PostgresProbe]) -> None:
    probe = probes(f"postgresql://app:hunter2@127.0.0.1:{free_port()}/app")
    failure = probe.finish().connect_failure
    assert failure is not None and failure.category == "refused" and failure.sqlstate is None
    assert "hunter2" not in failure.message


def test_missing_database_and_role(pg: TempCluster, probes: Callable[..., PostgresProbe]) -> None:
    missing_db = probes(pg.dsn(dbname="pd_nope")).finish().connect_failure
    assert missing_db is not None
    assert (missing_db.category, missing_db.sqlstate) == ("database_missing", "3D000")
    missing_role = probes(pg.dsn(user="pd_nobody")).finish().connect_failure
    assert missing_role is not None and missing_role.category == "authentication"


def test_bad_password_is_never_echoed(
    make_cluster: Callable[..., TempCluster], probes: Callable[..., PostgresProbe]
) -> None:
    cluster = make_cluster()
    hba = cluster.datadir / "pg_hba.conf"
    hba.write_text("host all pd_pw 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    cluster.execute("CREATE ROLE pd_pw LOGIN PASSWORD 'right-Pa55'; SELECT pg_reload_conf()")
    base = f"127.0.0.1:{cluster.port}/postgres"
    wrong = "wr@ng:pa/ss?W0rd"
    wait_until(
        lambda: probes(f"postgresql://pd_pw@{base}").finish().connect_failure is not None,
        "pg_hba.conf to require a password",
    )

    probe = probes(f"postgresql://pd_pw:{wrong}@{base}")
    evidence = probe.finish()
    failure = evidence.connect_failure
    assert failure is not None
    assert (failure.category, failure.sqlstate) == ("authentication", "28P01")
    assert 'password authentication failed for user "pd_pw"' in failure.message
    for shown in (dumps_dataclass(evidence), dumps_dataclass(probe.status())):
        assert wrong not in shown and "pa/ss" not in shown
    assert probe.status().name == f"postgresql://pd_pw@{base}"

    right = probes(f"postgresql://pd_pw:right-Pa55@{base}").finish()
    assert right.connect_failure is None and right.current_user == "pd_pw"


def test_invalid_dsn_is_evidence_without_the_password(
    probes: Callable[..., PostgresProbe],
) -> None:
    probe = probes("postgresql://app:hunter22@db/orders?bogus=1")
    failure = probe.finish().connect_failure
    assert failure is not None and failure.category == "invalid_dsn"
    assert failure.message == 'invalid DSN: invalid URI query parameter: "bogus"'
    assert probe.status().name == "postgresql://app@db/orders?bogus=1"
    assert "hunter22" not in dumps_dataclass(probe.status())


@pytest.mark.parametrize(
    ("message", "category", "sqlstate"),
    [
        (
            'connection to server at "h", port 5 failed: FATAL:  sorry, too many clients already',
            "too_many_clients",
            "53300",
        ),
        (
            "FATAL:  remaining connection slots are reserved for roles with the SUPERUSER att",
            "reserved_slots",
            "53300",
        ),
        (
            'FATAL:  too many connections for database "orders"',
            "database_connection_limit",
            "53300",
        ),
        ("FATAL:  the database system is starting up", "cannot_connect_now", "57P03"),
        ("FATAL:  the database system is shutting down", "cannot_connect_now", "57P03"),
        ('FATAL:  no pg_hba.conf entry for host "10.0.0.1", user "app"', "authentication", "28000"),
        ("fe_sendauth: no password supplied", "authentication", None),
        ("failed to resolve host 'db.invalid': [Errno -2] Name or service not known", "dns", None),
        ('could not translate host name "db.invalid" to address', "dns", None),
        ("connection timeout expired", "timeout", None),
        ("server closed the connection unexpectedly", "other", None),
    ],
)
def test_connect_errors_are_classified_from_their_text(
    message: str, category: str, sqlstate: str | None
) -> None:
    failure = classify_connect_error(message)
    assert (failure.category, failure.sqlstate, failure.message) == (category, sqlstate, message)


def test_sqlstate_wins_when_psycopg_has_one() -> None:
    assert classify_connect_error("anything", "57P03").category == "cannot_connect_now"
    assert classify_connect_error("anything", "XX000").category == "other"
    failure = classify_connect_error('x failed: FATAL:  database "a" does not exist', "3D000")
    assert connect_failure_reason(failure) == 'database "a" does not exist (3D000)'


# -- query text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "redacted"),
    [
        (
            "SELECT * FROM users WHERE email = 'a@b.c' AND id = 42",
            "SELECT * FROM users WHERE email = ? AND id = ?",
        ),
        ("SELECT 'it''s', E'tab\\t\\'q\\'', 3.5e-3, .5, 0x1F", "SELECT ?, ?, ?, ?, ?"),
        ("SELECT $$body; 'x'$$, $fn$ a $$ b $fn$ FROM t1", "SELECT ?, ? FROM t1"),
        ("UPDATE t2 SET v = $1 WHERE id = $2", "UPDATE t2 SET v = $1 WHERE id = $2"),
        ('SELECT "col 1", "Weird""Name" FROM "T3"', 'SELECT "col 1", "Weird""Name" FROM "T3"'),
        ("SELECT x'FF', b'101', N'nat', U&'d\\0061t'", "SELECT ?, ?, ?, ?"),
        ("SELECT col_2, t3.v9 FROM tab_10 LIMIT 10", "SELECT col_2, t3.v9 FROM tab_10 LIMIT ?"),
        ("SELECT 1 /* app='web' */ -- note 'x'", "SELECT ? /* app='web' */ -- note 'x'"),
        ("SELECT interval '5 min', -7", "SELECT interval ?, -?"),
        ("INSERT INTO t VALUES ('unterminated", "INSERT INTO t VALUES (?"),
        ("SELECT $tag$ never closed", "SELECT ?"),
        ("SELECT café, 'crème' FROM données", "SELECT café, ? FROM données"),
    ],
)
def test_literals_are_redacted(query: str, redacted: str) -> None:
    assert redact_literals(query) == redacted


def test_query_text_is_collapsed_and_truncated() -> None:
    query = "SELECT\n    a,\n    'x'\nFROM t WHERE id IN (" + ", ".join(["1"] * 300) + ")"
    short = shorten_query(query, 40)
    assert short == "SELECT a, ? FROM t WHERE id IN (?, ?, ?…"
    assert len(short) == 40
    assert shorten_query("SELECT 'keep'", 40, redact=False) == "SELECT 'keep'"


def test_role_without_pg_monitor_counts_what_it_cannot_see(
    pg: TempCluster,
    probes: Callable[..., PostgresProbe],
    connections: Callable[..., psycopg.Connection[tuple[object, ...]]],
) -> None:
    with login_role(pg, "pd_watcher"), login_role(pg, "pd_other"):
        for _ in range(2):
            other = connections(pg.dsn(user="pd_other", application_name="billing"))
            other.execute(b"SELECT 1")  # now idle in transaction, invisible to pd_watcher
        connections(pg.dsn(application_name="psql"), autocommit=True)
        own = connections(pg.dsn(user="pd_watcher", application_name="watcher"), autocommit=True)

        probe = probes(pg.dsn(user="pd_watcher"))
        probe.sample()
        blind = probe.finish()
        pg.execute("GRANT pg_monitor TO pd_watcher")
        probe = probes(pg.dsn(user="pd_watcher"))
        probe.sample()
        seeing = probe.finish()

    assert blind.can_read_all_stats is False
    hidden = [b for b in blind.samples[0].backends if b.query_hidden]
    assert blind.hidden_per_sample == (len(hidden),)
    assert {"pd_other", "postgres"} <= set(blind.hidden_roles)
    assert "pd_watcher" not in blind.hidden_roles
    billing = [b for b in hidden if b.application_name == "billing"]
    assert len(billing) == 2
    assert all(b.state is None and b.backend_type is None for b in billing)
    assert not backend(blind.samples[0], own.info.backend_pid).query_hidden
    assert seeing.can_read_all_stats is True
    assert seeing.hidden_per_sample == (0,) and seeing.hidden_roles == ()
    states = [b.state for b in seeing.samples[0].backends if b.application_name == "billing"]
    assert states == ["idle in transaction", "idle in transaction"]


def test_reserved_connection_roles_follow_the_server_version(
    pg: TempCluster, probes: Callable[..., PostgresProbe]
) -> None:
    if pg.major < 16:
        evidence = probes(pg.dsn()).finish()
        assert "reserved_connections" not in evidence.settings
        assert evidence.reserved_connection_roles == ()
        assert evidence.errors == ()
        return
    with login_role(pg, "pd_operator"):
        pg.execute("GRANT pg_use_reserved_connections TO pd_operator")
        evidence = probes(pg.dsn()).finish()
    assert evidence.settings["reserved_connections"] == "0"
    assert evidence.reserved_connection_roles == ("pd_operator",)
    assert evidence.errors == ()
