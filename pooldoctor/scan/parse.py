"""Parse Python source into an AST safely while other threads parse too (CPython 3.11)."""

from __future__ import annotations

import ast
import gc
import threading

# CPython 3.11 keeps the AST constructor's recursion depth in interpreter-wide state and resets
# it when a parse starts. A garbage collection during construction can run finalizers, which
# lets another thread's ast.parse (the traceback module's, when it logs an exception) reset that
# depth: the interrupted parse then fails with "AST constructor recursion depth mismatch"
# (python/cpython#106905). Without collections no Python code runs during construction, so no
# other thread can interleave; the lock keeps our own threads from re-enabling it early.
_NO_COLLECTION = threading.Lock()


def parse_source(source: str, filename: str) -> ast.Module:
    """ast.parse that another thread's parsing cannot interrupt."""
    with _NO_COLLECTION:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return ast.parse(source, filename=filename)
        finally:
            if was_enabled:
                gc.enable()
