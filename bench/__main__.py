"""Run every benchmark module (bench/bench_*.py), or the ones named: python -m bench [NAME...]."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """Import each bench_* module and call its main(); return non-zero if any failed."""
    names = sorted(
        info.name
        for info in pkgutil.iter_modules([str(Path(__file__).parent)])
        if info.name.startswith("bench_")
    )
    wanted = [name if name.startswith("bench_") else f"bench_{name}" for name in argv] or names
    failures = 0
    for name in wanted:
        if name not in names:
            print(f"unknown benchmark {name!r}; available: {', '.join(names)}", file=sys.stderr)
            return 64
        module = importlib.import_module(f"bench.{name}")
        print(f"== {name}")
        failures += int(bool(module.main()))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
