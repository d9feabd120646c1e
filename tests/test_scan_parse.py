"""The scan's parse survives other threads parsing while a collection runs finalizers."""

from __future__ import annotations

import ast
import contextlib
import gc
import threading
import time
from pathlib import Path

from pooldoctor.scan.parse import parse_module

ROUNDS = 5


class _YieldsInFinalizer:
    """Garbage whose finalizer hands the GIL to another thread, as logging or I/O would."""

    def __init__(self) -> None:
        self.cycle = self

    def __del__(self) -> None:
        time.sleep(0)


def test_parse_survives_a_thread_parsing_during_collection() -> None:
    source = Path(ast.__file__).with_name("typing.py").read_text(encoding="utf-8")
    stop = threading.Event()

    def parse_elsewhere() -> None:
        # This thread's own parse can still lose when this test's parse runs in its finalizer:
        # only the parse that pauses collection is protected.
        while not stop.is_set():
            with contextlib.suppress(SystemError):
                ast.parse("x = (1 +\n 2)\n" * 20)

    other = threading.Thread(target=parse_elsewhere, daemon=True)
    other.start()
    threshold = gc.get_threshold()
    gc.set_threshold(50)
    try:
        for _ in range(ROUNDS):
            garbage = [_YieldsInFinalizer() for _ in range(60)]
            del garbage
            assert isinstance(parse_module(source, "typing.py"), ast.Module)
    finally:
        gc.set_threshold(*threshold)
        stop.set()
        other.join(timeout=10)
    assert gc.isenabled()
