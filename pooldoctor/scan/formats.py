"""Output formats of `pooldoctor scan` (kept apart so the CLI imports no scanner to parse)."""

from enum import StrEnum


class ScanFormat(StrEnum):
    """`--format` values of `pooldoctor scan`."""

    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"
