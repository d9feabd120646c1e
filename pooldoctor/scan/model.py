"""What a scan produces: findings, unreadable files, and the root paths are relative to."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, order=True)
class ScanFinding:
    """One rule violation at a 1-based line and column."""

    path: Path
    line: int
    column: int
    rule_id: str
    message: str


@dataclass(frozen=True)
class ScanError:
    """A file that could not be analysed (syntax error, undecodable); reported, not fatal."""

    path: Path
    line: int
    column: int
    message: str


@dataclass(frozen=True)
class ScanResult:
    """Everything `pooldoctor scan` reports."""

    root: Path
    files_scanned: int
    findings: tuple[ScanFinding, ...] = ()
    errors: tuple[ScanError, ...] = field(default_factory=tuple)
