"""What a check declares once, in its own module: name, runbooks, summary, function."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pooldoctor.evidence import Evidence
from pooldoctor.findings import Finding
from pooldoctor.readings import Readings, read


@dataclass(frozen=True)
class CheckSpec:
    """One check: what it is called, which runbooks its findings name, and its pure function."""

    name: str
    runbooks: tuple[str, ...]
    summary: str
    check: Callable[[Readings], Sequence[Finding]]

    def run(self, evidence: Evidence) -> Sequence[Finding]:
        """The check on its own (no arbitration with other checks; see diagnosis.arbitrate)."""
        return self.check(read(evidence))
