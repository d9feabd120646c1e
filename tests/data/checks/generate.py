"""Write the per-check evidence fixtures (run `python tests/data/checks/generate.py`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from pooldoctor.evidence import evidence_to_json  # noqa: E402
from tests.data.checks.cases import FAILING, HEALTHY  # noqa: E402


def rendered() -> dict[str, str]:
    """File name -> content for every fixture and the expectations index."""
    files: dict[str, str] = {}
    expected: dict[str, dict[str, object]] = {}
    for name, (build, outcome) in FAILING.items():
        files[f"{name}.failing.json"] = evidence_to_json(build())
        expected[f"{name}.failing.json"] = {
            "check": outcome.check,
            "runbook": outcome.runbook,
            "severity": outcome.severity,
            "top": outcome.top,
        }
    for name, build in HEALTHY.items():
        files[f"{name}.json"] = evidence_to_json(build())
        expected[f"{name}.json"] = {"check": None}
    files["expected.json"] = json.dumps(expected, indent=2, sort_keys=True) + "\n"
    return files


def main() -> None:
    for name, text in rendered().items():
        (HERE / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
