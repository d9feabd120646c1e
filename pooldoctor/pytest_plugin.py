"""pytest plugin (entry point pytest11): fail tests that leave connections checked out."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

LEAK_CHECK_FIXTURE = "pooldoctor_leak_check"
LEAK_MARKER = "no_leaked_connections"
ENGINES_MARKER = "pooldoctor_engines"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pooldoctor")
    group.addoption(
        "--pooldoctor-leaks",
        action="store_true",
        default=False,
        help="pooldoctor: check every test for connections left checked out.",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{LEAK_MARKER}: fail the test (at teardown) if it leaves connections checked out of an "
        "instrumented SQLAlchemy engine; names the origin and age of each leaked checkout.",
    )
    config.addinivalue_line(
        "markers",
        f"{ENGINES_MARKER}(*engines): engines (objects or fixture names) that pooldoctor's leak "
        "check watches; default: the `pooldoctor_engines` fixture, else every instrumented engine.",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    check_all = bool(config.getoption("--pooldoctor-leaks"))
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        wanted = check_all or item.get_closest_marker(LEAK_MARKER) is not None
        if wanted and LEAK_CHECK_FIXTURE not in item.fixturenames:
            # First in line: set up before, so torn down after, the fixtures that own connections.
            item.fixturenames.insert(0, LEAK_CHECK_FIXTURE)


@pytest.fixture
def pooldoctor_engines() -> Sequence[Any]:
    """Override to name the engines to watch; empty means every instrumented engine."""
    return ()


def _chosen_engines(request: pytest.FixtureRequest) -> list[Any]:
    marker = request.node.get_closest_marker(ENGINES_MARKER)
    if marker is not None and marker.args:
        return [
            request.getfixturevalue(arg) if isinstance(arg, str) else arg for arg in marker.args
        ]
    return list(request.getfixturevalue("pooldoctor_engines"))


def _engine_label(engine: Any) -> str:
    return str(engine.url.render_as_string(hide_password=True))


@pytest.fixture
def pooldoctor_leak_check(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test at teardown when a checkout made since its setup is still held."""
    from pooldoctor.app.instrument import instrument, instrumented_engines, tracker_for

    chosen = _chosen_engines(request)
    for engine in chosen:
        instrument(engine)
    started = time.monotonic()
    yield
    now = time.monotonic()
    problems: list[str] = []
    # Without a choice, every engine instrumented by now: session fixtures may instrument theirs
    # after this fixture was set up.
    for engine in chosen or instrumented_engines():
        tracker = tracker_for(engine)
        if tracker is None:
            continue
        leaked = [checkout for checkout in tracker.current() if checkout.started >= started]
        if not leaked:
            continue
        problems.append(
            f"{len(leaked)} connection(s) left checked out of engine {_engine_label(engine)}:"
        )
        problems.extend(
            f"  - {checkout.origin()} (held {now - checkout.started:.2f} s, "
            f"thread {checkout.thread})"
            for checkout in leaked
        )
    if problems:
        pytest.fail("pooldoctor: " + "\n".join(problems), pytrace=False)
