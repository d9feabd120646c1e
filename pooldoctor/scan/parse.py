"""Parse Python source into an AST without letting another thread's parse break it."""

from __future__ import annotations

import ast
import gc


def parse_module(source: str, filename: str = "<unknown>") -> ast.Module:
    """`ast.parse` with the garbage collector paused for the call.

    CPython 3.11 keeps the AST converter's recursion counter in interpreter-wide state
    (python/cpython#106905). A collection during the conversion can run a finalizer that yields the
    GIL; another thread's `ast.parse` (3.11's traceback module calls it to place carets, so any
    thread logging an exception does) then moves the counter, and this parse fails with
    "SystemError: AST constructor recursion depth mismatch". The conversion runs no Python code
    of its own, so with collection paused no other thread can run until it is done.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(source, filename=filename)
    finally:
        if enabled:
            gc.enable()
