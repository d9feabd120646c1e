"""`pooldoctor scan`: static AST checks for leak-prone session and connection handling."""

from pooldoctor.scan.model import ScanError, ScanFinding, ScanResult
from pooldoctor.scan.output import ScanFormat, render
from pooldoctor.scan.rules import RULES, Rule
from pooldoctor.scan.scanner import ScanInputError, scan

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
