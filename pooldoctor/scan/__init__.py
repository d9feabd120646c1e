"""`pooldoctor scan`: static AST checks for leak-prone session and connection handling."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pooldoctor.scan.formats import ScanFormat
    from pooldoctor.scan.model import ScanError, ScanFinding, ScanResult
    from pooldoctor.scan.output import render
    from pooldoctor.scan.rules import RULES, Rule
    from pooldoctor.scan.scanner import ScanInputError, scan

_EXPORTS = {
    "RULES": "pooldoctor.scan.rules",
    "Rule": "pooldoctor.scan.rules",
    "ScanError": "pooldoctor.scan.model",
    "ScanFinding": "pooldoctor.scan.model",
    "ScanFormat": "pooldoctor.scan.formats",
    "ScanInputError": "pooldoctor.scan.scanner",
    "ScanResult": "pooldoctor.scan.model",
    "render": "pooldoctor.scan.output",
    "scan": "pooldoctor.scan.scanner",
}

__all__ = [
    "RULES",
    "Rule",
    "ScanError",
    "ScanFinding",
    "ScanFormat",
    "ScanInputError",
    "ScanResult",
    "render",
    "scan",
]


def __getattr__(name: str) -> object:
    """Import the scanner on first use, so parsing `pooldoctor scan` options stays cheap."""
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pooldoctor.scan' has no attribute {name!r}")
