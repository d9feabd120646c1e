"""The pytest plugin, run on generated suites (pytester, subprocess) against real PostgreSQL."""

from __future__ import annotations

import pytest

from pooldoctor.lab.cluster import TempCluster

INNER_CONFTEST = """
import os

import pytest
import sqlalchemy as sa

import pooldoctor

LEAKED = []


@pytest.fixture(scope="session")
def engine():
    engine = sa.create_engine(os.environ["POOLDOCTOR_TEST_URL"], pool_size=2, max_overflow=0)
    pooldoctor.instrument(engine)
    yield engine
    for conn in LEAKED:
        conn.close()
    engine.dispose()


@pytest.fixture
def session_conn(engine):
    conn = engine.connect()
    yield conn
    conn.close()
"""

INNER_INI = """
[pytest]
filterwarnings = error
"""


@pytest.fixture
def suite(
    pytester: pytest.Pytester, pg: TempCluster, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    monkeypatch.setenv("POOLDOCTOR_TEST_URL", pg.url())
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makeini(INNER_INI)
    return pytester


def _run(suite: pytest.Pytester, *args: str) -> pytest.RunResult:
    return suite.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=120)


def test_marker_fails_leaking_test_with_origin_and_passes_clean_one(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_orders="""
        import pytest
        import sqlalchemy as sa

        from conftest import LEAKED


        def create_order(engine):
            conn = engine.connect()
            conn.execute(sa.text("select 1"))
            LEAKED.append(conn)


        @pytest.mark.no_leaked_connections
        def test_leaks(engine):
            create_order(engine)


        @pytest.mark.no_leaked_connections
        def test_clean(engine):
            with engine.connect() as conn:
                conn.execute(sa.text("select 1"))


        @pytest.mark.no_leaked_connections
        def test_fixture_owned_connection_is_not_a_leak(session_conn):
            session_conn.execute(sa.text("select 1"))
        """
    )
    result = _run(suite)
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaks*",
            "*pooldoctor: 1 connection(s) left checked out of engine postgresql+psycopg://*",
            "*- test_orders.py:8 in create_order (held *s, thread MainThread)",
        ]
    )
    assert "test_clean" not in result.stdout.str().split("short test summary")[-1]


def test_unmarked_tests_are_not_checked_unless_asked(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_plain="""
        from conftest import LEAKED


        def test_leaks_silently(engine):
            LEAKED.append(engine.connect())
        """
    )
    _run(suite).assert_outcomes(passed=1)
    _run(suite, "--pooldoctor-leaks").assert_outcomes(passed=1, errors=1)


def test_engines_marker_names_fixtures_and_fixture_can_be_requested(
    suite: pytest.Pytester,
) -> None:
    suite.makepyfile(
        test_named="""
        import os

        import pytest
        import sqlalchemy as sa

        KEEP = []


        @pytest.fixture
        def other_engine():
            engine = sa.create_engine(os.environ["POOLDOCTOR_TEST_URL"])
            yield engine
            for conn in KEEP:
                conn.close()
            engine.dispose()


        @pytest.mark.pooldoctor_engines("other_engine")
        def test_uninstrumented_engine_gets_instrumented(pooldoctor_leak_check, other_engine):
            KEEP.append(other_engine.connect())
        """
    )
    result = _run(suite)
    result.assert_outcomes(errors=1, passed=1)
    result.stdout.fnmatch_lines(
        ["*test_named.py:20 in test_uninstrumented_engine_gets_instrumented*"]
    )
