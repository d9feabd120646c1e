"""Runbook SQL: linted for safety, run (or planned) on PostgreSQL 15 and 18, kills proven scoped."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from pooldoctor.lab.cluster import TempCluster
from pooldoctor.runbooks import RUNBOOK_SLUGS, get_runbook
from tests.runbook_blocks import code_blocks

SQL_STATEMENT_TIMEOUT = "5s"
WAITER_LOCK_TIMEOUT = "20s"  # queued writers give up on their own if the test breaks
WAIT_SECONDS = 10.0  # upper bound for any condition a test waits for on the server
CANCEL_SETTLE_SECONDS = 0.5  # long enough for a cancel to have released the lock if it could
WRITER_JOIN_SECONDS = 25.0

APP_NAME = "checkout-api"  # the runbooks' placeholder application_name
APP_ROLE = "app"  # ... and role
PGBOUNCER_ADMIN = re.compile(
    r"^(SHOW (POOLS|CONFIG|VERSION|CLIENTS|SERVERS|DATABASES)|RELOAD)\b", re.I
)
SIGNALS_BACKENDS = re.compile(r"pg_(cancel|terminate)_backend\s*\(", re.I)
NEEDS_VERSION = re.compile(r"--\s*PostgreSQL (\d+)\+")
VERSIONED_SETTINGS = (
    "reserved_connections",
    "idle_session_timeout",
    "client_connection_check_interval",
)
KILL_RUNBOOKS = {
    "connection-leak",
    "idle-in-transaction",
    "async-cancellation-leak",
    "server-max-connections",
    "failover-read-only",
}


@dataclass(frozen=True)
class SqlBlock:
    """One ```sql block of a runbook."""

    slug: str
    section: str
    code: str

    @property
    def label(self) -> str:
        return f"{self.slug} / {self.section}"

    @property
    def sql(self) -> str:
        """The code without comments."""
        return re.sub(r"--[^\n]*", "", self.code)

    @property
    def signals_backends(self) -> bool:
        return SIGNALS_BACKENDS.search(self.sql) is not None

    @property
    def min_major(self) -> int:
        found = NEEDS_VERSION.search(self.code)
        return int(found.group(1)) if found else 0

    def statements(self) -> list[str]:
        return [s.strip().replace("<pid>", "0") for s in self.sql.split(";") if s.strip()]


def sql_blocks() -> list[SqlBlock]:
    return [
        SqlBlock(slug, section, code)
        for slug in RUNBOOK_SLUGS
        for section, language, code in code_blocks(get_runbook(slug).body)
        if language == "sql"
    ]


def where_clause(sql: str) -> str:
    """The WHERE clause of the (outermost, last) FROM pg_stat_activity, whitespace-normalized."""
    match = re.search(
        r"FROM pg_stat_activity\s+WHERE\s+(.*?)(?:\bORDER BY\b|\bGROUP BY\b|;|$)", sql, re.S
    )
    return " ".join(match.group(1).split()) if match else ""


def kill_problems(block: SqlBlock, earlier: list[SqlBlock]) -> list[str]:
    """Why a block that signals backends is unsafe to paste; [] when it follows the rules."""
    sql = block.sql
    problems = []
    where = where_clause(sql)
    if not where:
        problems.append("signals backends without a WHERE on pg_stat_activity")
    if "application_name =" not in where:
        problems.append("not scoped to the app's application_name")
    if "usename =" not in where:
        problems.append("not scoped to the app's role (usename)")
    if "pid <> pg_backend_pid()" not in where:
        problems.append("does not spare its own session (pid <> pg_backend_pid())")
    previews = [
        b
        for b in earlier
        if b.section == block.section
        and not b.signals_backends
        and "count(*) OVER ()" in b.sql
        and where_clause(b.sql) == where
    ]
    if not previews:
        problems.append("no preceding SELECT with the same WHERE that counts what it would hit")
    return problems


def runbook_kill_problems() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for slug in RUNBOOK_SLUGS:
        blocks = [b for b in sql_blocks() if b.slug == slug]
        for index, block in enumerate(blocks):
            if block.signals_backends:
                problems = kill_problems(block, blocks[:index])
                if problems:
                    found[f"{block.label}: {block.code[:60]!r}"] = problems
    return found


# --- lint: what a tired reader pastes must not make things worse --------------------------------


def test_every_kill_snippet_is_scoped_previewed_and_spares_its_own_session() -> None:
    assert runbook_kill_problems() == {}
    with_kills = {b.slug for b in sql_blocks() if b.signals_backends}
    assert with_kills >= KILL_RUNBOOKS


def test_the_kill_lint_rejects_the_old_unscoped_snippet() -> None:
    unscoped = SqlBlock(
        "connection-leak",
        "Mitigation",
        "SELECT pid, pg_terminate_backend(pid)\nFROM pg_stat_activity\n"
        "WHERE backend_type = 'client backend'\n  AND state = 'idle in transaction';",
    )
    problems = kill_problems(unscoped, [])
    assert len(problems) == 4
    preview = SqlBlock(
        "connection-leak",
        "Mitigation",
        "SELECT count(*) OVER () AS would_end, pid FROM pg_stat_activity\n"
        "WHERE application_name = 'x' AND usename = 'app' AND pid <> pg_backend_pid();",
    )
    scoped = SqlBlock(
        "connection-leak",
        "Mitigation",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity\n"
        "WHERE application_name = 'x' AND usename = 'app'\n  AND pid <> pg_backend_pid();",
    )
    assert kill_problems(scoped, [preview]) == []
    assert kill_problems(scoped, []) == [
        "no preceding SELECT with the same WHERE that counts what it would hit"
    ]


def test_the_failover_kill_only_runs_on_a_standby() -> None:
    kills = [b for b in sql_blocks() if b.slug == "failover-read-only" and b.signals_backends]
    assert kills and all("pg_is_in_recovery()" in where_clause(b.sql) for b in kills)


def test_no_filter_silently_drops_rows_hidden_from_roles_without_pg_monitor() -> None:
    for block in sql_blocks():
        bare = re.sub(r"coalesce\(backend_type, 'client backend'\)", "", block.sql)
        assert "backend_type = 'client backend'" not in bare, block.label
        assert "current_user" not in where_clause(block.sql), block.label


def test_version_specific_settings_are_read_with_missing_ok() -> None:
    for block in sql_blocks():
        for name in VERSIONED_SETTINGS:
            for call in re.findall(rf"current_setting\('{name}'[^)]*\)", block.sql):
                assert call == f"current_setting('{name}', true)", f"{block.label}: {call}"


def test_role_settings_say_they_reach_new_sessions_only() -> None:
    alters = [b for b in sql_blocks() if re.search(r"ALTER (ROLE|DATABASE) .* SET ", b.sql)]
    assert len(alters) >= 5
    for block in alters:
        assert "new sessions only" in block.code, block.label


# --- every block runs, or is planned, on each PostgreSQL major ------------------------------------


def test_runbooks_carry_sql() -> None:
    assert sum(len(b.statements()) for b in sql_blocks()) >= 30


def test_runbook_sql_runs_on_postgres(pg_each: TempCluster) -> None:
    """Diagnosis SELECTs run for real; statements that change things are planned or rolled back."""
    major = pg_each.major
    checked = skipped = 0
    with psycopg.connect(pg_each.dsn(), autocommit=True, connect_timeout=10) as conn:
        for block in sql_blocks():
            if block.min_major > major:
                skipped += 1
                continue
            for statement in block.statements():
                if PGBOUNCER_ADMIN.match(statement):
                    continue
                _run_or_plan(conn, block, statement)
                checked += 1
    assert checked >= 30
    assert skipped == (1 if major < 16 else 0)  # slow-queries' EXPLAIN (GENERIC_PLAN)


def _run_or_plan(conn: psycopg.Connection[Any], block: SqlBlock, statement: str) -> None:
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(f"SET LOCAL statement_timeout = '{SQL_STATEMENT_TIMEOUT}'")
            for role in (APP_ROLE, "migrator"):
                conn.execute(
                    "DO $$BEGIN CREATE ROLE " + role + "; "
                    "EXCEPTION WHEN duplicate_object THEN NULL; END$$"
                )
            if "pg_stat_statements" in statement:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            is_query = re.match(r"(SELECT|WITH|SHOW|EXPLAIN)\b", statement, re.I) is not None
            planned = "pg_stat_statements" in statement or SIGNALS_BACKENDS.search(statement)
            if is_query and planned:
                conn.execute("EXPLAIN " + statement)
            elif is_query:
                conn.execute(statement).fetchall()
            else:
                conn.execute(statement)
    except psycopg.Error as exc:
        pytest.fail(f"{block.label}: {exc}\n{statement}")


# --- the kill snippets, for real ----------------------------------------------------------------


def _snippets(slug: str) -> tuple[str, str]:
    """(preview, kill) of the runbook's first kill snippet, ages shortened to 0 for the test."""
    blocks = [b for b in sql_blocks() if b.slug == slug and b.section == "Mitigation"]
    kill_index = next(i for i, b in enumerate(blocks) if b.signals_backends)
    preview = blocks[kill_index - 1]

    def now(sql: str) -> str:
        return re.sub(r"interval '[^']+'", "interval '0 seconds'", sql).strip().rstrip(";")

    return now(preview.sql), now(blocks[kill_index].sql)


@pytest.fixture
def roles(pg_each: TempCluster) -> Iterator[TempCluster]:
    """Login roles `app` and `reporting`; their sessions are ended and the roles dropped after."""
    for role in (APP_ROLE, "reporting"):
        pg_each.execute(
            f"DO $$BEGIN CREATE ROLE {role} LOGIN; "
            f"EXCEPTION WHEN duplicate_object THEN ALTER ROLE {role} LOGIN; END$$"
        )
    yield pg_each
    pg_each.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE usename IN ('{APP_ROLE}', 'reporting')"
    )
    pg_each.execute(f"DROP ROLE IF EXISTS {APP_ROLE}; DROP ROLE IF EXISTS reporting")


def _idle_in_transaction(cluster: TempCluster, user: str, app: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(cluster.dsn(user=user, application_name=app), connect_timeout=10)
    conn.execute("SELECT 1")  # opens the transaction and leaves it idle
    return conn


def _wait_until_gone(cluster: TempCluster, pids: set[int]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    with psycopg.connect(cluster.dsn(), autocommit=True, connect_timeout=10) as conn:
        while True:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", (list(pids),)
            ).fetchall()
            if not rows:
                return
            assert time.monotonic() < deadline, f"still running: {rows}"
            time.sleep(0.05)


def test_scoped_kill_ends_only_the_apps_sessions(roles: TempCluster) -> None:
    """Another role, another app of the same role and superuser sessions all match the state filter;
    only the app's own sessions end, and the runner's session survives."""
    cluster = roles
    preview_sql, kill_sql = _snippets("idle-in-transaction")
    app_sessions = [_idle_in_transaction(cluster, APP_ROLE, APP_NAME) for _ in range(2)]
    bystanders = {
        "other role, same application_name": _idle_in_transaction(cluster, "reporting", APP_NAME),
        "same role, other application": _idle_in_transaction(cluster, APP_ROLE, "checkout-migrate"),
        "superuser psql": _idle_in_transaction(cluster, cluster.superuser, "psql"),
        "superuser, same application_name": _idle_in_transaction(
            cluster, cluster.superuser, APP_NAME
        ),
    }
    app_pids = {c.info.backend_pid for c in app_sessions}
    try:
        with psycopg.connect(
            cluster.dsn(application_name=APP_NAME), autocommit=True, connect_timeout=10
        ) as runner:
            previewed = runner.execute(preview_sql).fetchall()
            assert {row[0] for row in previewed} == {len(app_pids)}  # would_end
            assert {row[1] for row in previewed} == app_pids
            ended = runner.execute(kill_sql).fetchall()
            assert {row[0] for row in ended} == app_pids and all(row[1] for row in ended)
            _wait_until_gone(cluster, app_pids)
            runner.execute("SELECT 1")  # the session that ran it is untouched
        for conn in app_sessions:
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT 1")
        for what, conn in bystanders.items():
            assert conn.execute("SELECT 1").fetchone() == (1,), what
    finally:
        for conn in [*app_sessions, *bystanders.values()]:
            conn.close()


def test_failover_kill_ends_nothing_on_a_primary(roles: TempCluster) -> None:
    cluster = roles
    preview_sql, kill_sql = _snippets("failover-read-only")
    app_session = _idle_in_transaction(cluster, APP_ROLE, APP_NAME)
    try:
        with psycopg.connect(cluster.dsn(), autocommit=True, connect_timeout=10) as runner:
            assert runner.execute(preview_sql).fetchall() == []
            assert runner.execute(kill_sql).fetchall() == []
        assert app_session.execute("SELECT 1").fetchone() == (1,)
    finally:
        app_session.close()


def test_lock_contention_sql_finds_the_root_blocker_and_terminate_frees_waiters(
    roles: TempCluster,
) -> None:
    """A real idle-in-transaction lock holder of the app with two queued writers, handled by the
    runbook's root-blocker query, scoped cancel (no effect) and scoped terminate."""
    cluster = roles
    blocks = [b for b in sql_blocks() if b.slug == "lock-contention"]
    root_blocker_sql = next(b.sql for b in blocks if "WITH waiting" in b.sql).strip().rstrip(";")
    cancel_sql, terminate_sql = (
        next(b.sql for b in blocks if f"pg_{kind}_backend" in b.sql).strip().rstrip(";")
        for kind in ("cancel", "terminate")
    )
    table = "runbook_lock_demo"
    cluster.execute(
        f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id int PRIMARY KEY, n int)"
    )
    cluster.execute(f"INSERT INTO {table} VALUES (1, 0); GRANT ALL ON {table} TO {APP_ROLE}")
    outcomes: list[str] = []

    def queued_writer() -> None:
        with psycopg.connect(cluster.dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f"SET lock_timeout = '{WAITER_LOCK_TIMEOUT}'")
            try:
                conn.execute(f"UPDATE {table} SET n = n + 1 WHERE id = 1")
                outcomes.append("updated")
            except psycopg.Error as exc:
                outcomes.append(f"error: {exc}")

    holder = psycopg.connect(
        cluster.dsn(user=APP_ROLE, application_name=APP_NAME), connect_timeout=10
    )
    observer = psycopg.connect(cluster.dsn(), autocommit=True, connect_timeout=10)
    writers = [threading.Thread(target=queued_writer) for _ in range(2)]
    try:
        holder.execute(f"UPDATE {table} SET n = n + 1 WHERE id = 1")  # left idle in transaction
        for writer in writers:
            writer.start()
        _wait_for_lock_waiters(observer, 2)

        roots = observer.execute(root_blocker_sql).fetchall()
        assert [row[0] for row in roots] == [holder.info.backend_pid]
        assert roots[0][3] == "idle in transaction"
        assert roots[0][6] >= 1  # direct waiters; the second writer queues behind the first
        pid = str(holder.info.backend_pid)

        # Mitigation step 2: cancel does nothing to an idle-in-transaction holder...
        observer.execute(cancel_sql.replace("<pid>", pid))
        time.sleep(CANCEL_SETTLE_SECONDS)
        assert _lock_waiters(observer) == 2
        # ...step 3: terminate does, and both queued writers proceed.
        assert observer.execute(terminate_sql.replace("<pid>", pid)).fetchall() == [
            (holder.info.backend_pid, True)
        ]
        for writer in writers:
            writer.join(timeout=WRITER_JOIN_SECONDS)
        assert outcomes == ["updated", "updated"]
    finally:
        holder.close()
        for writer in writers:
            writer.join(timeout=WRITER_JOIN_SECONDS)
        observer.execute(f"DROP TABLE IF EXISTS {table}")
        observer.close()


def _lock_waiters(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    ).fetchone()
    return int(row[0]) if row else 0


def _wait_for_lock_waiters(conn: psycopg.Connection[Any], expected: int) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while _lock_waiters(conn) < expected:
        assert time.monotonic() < deadline, f"fewer than {expected} lock waiters appeared"
        time.sleep(0.05)
