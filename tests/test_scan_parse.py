"""The scanner's parse survives other threads parsing while collections run finalizers."""

from __future__ import annotations

import ast
import sys
import threading
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from pooldoctor.scan.parse import parse_source

PARSES = 6  # a parse of ast.py fails about every second time without the guard


class _Cycle:
    """Cyclic garbage with a finalizer: collecting it runs Python code (a thread switch)."""

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        pass


@pytest.fixture
def busy_neighbour() -> Iterator[None]:
    """Another thread making cyclic garbage and parsing small segments, as traceback does."""
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            for _ in range(200):
                _Cycle()
            with suppress(SystemError):  # the neighbour's own parse may be the one cut
                ast.parse("a.b(c)[d]")

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)


@pytest.mark.usefixtures("busy_neighbour")
def test_parse_is_not_interrupted_by_another_thread_s_parse() -> None:
    source = Path(ast.__file__).read_text(encoding="utf-8")
    trees = [parse_source(source, ast.__file__) for _ in range(PARSES)]
    assert all(isinstance(tree, ast.Module) and tree.body for tree in trees)
