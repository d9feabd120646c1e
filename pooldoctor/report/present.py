"""Presentation helpers shared by the markdown and HTML templates: evidence tables, code spans."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pooldoctor.report.textfmt import shorten

# Rows of one evidence table shown in md/HTML; report.json always carries them all.
MAX_EVIDENCE_ROWS = 25
# Longest text in an evidence cell (queries, log lines); report.json keeps the full text.
MAX_CELL_CHARS = 200
# SQL statements inside a remediation step, written in upper case as runbooks do.
_SQL = re.compile(
    r"\b(?:SELECT|ALTER|SET|SHOW|CREATE|DROP|UPDATE|DELETE|INSERT|VACUUM|ANALYZE|EXPLAIN|"
    r"RESET|GRANT|REVOKE|TRUNCATE|CALL|LOCK)\s"
    # quoted identifiers and literals may hold ; (a role named `x"; DROP ...`)
    r"(?:[^;\n\"']|\"(?:[^\"\n]|\"\")*\"|'(?:[^'\n]|'')*')*(?:;|$)"
)


@dataclass(frozen=True)
class EvidenceTable:
    """One table derived from a finding's evidence dict."""

    title: str | None
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    omitted: int = 0


def cell(value: Any) -> str:
    """A JSON-ready value as short table text."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{round(value, 3):g}"
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return shorten(", ".join(cell(v) for v in value), MAX_CELL_CHARS)
    if isinstance(value, dict | list):
        return shorten(json.dumps(value, ensure_ascii=False), MAX_CELL_CHARS)
    return shorten(str(value), MAX_CELL_CHARS)


def _is_record_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _record_table(title: str, records: Sequence[Mapping[str, Any]]) -> EvidenceTable:
    columns: list[str] = []
    for record in records:
        columns.extend(str(key) for key in record if str(key) not in columns)
    rows = tuple(
        tuple(cell(record.get(column)) for column in columns)
        for record in records[:MAX_EVIDENCE_ROWS]
    )
    return EvidenceTable(title, tuple(columns), rows, max(0, len(records) - MAX_EVIDENCE_ROWS))


def _key_value_table(title: str | None, items: Sequence[tuple[str, Any]]) -> EvidenceTable:
    rows = tuple((key, cell(value)) for key, value in items[:MAX_EVIDENCE_ROWS])
    return EvidenceTable(title, ("Key", "Value"), rows, max(0, len(items) - MAX_EVIDENCE_ROWS))


def evidence_tables(evidence: Mapping[str, Any]) -> list[EvidenceTable]:
    """Scalars -> one key/value table; lists of dicts -> a table each; dicts -> a key/value each."""
    scalars: list[tuple[str, Any]] = []
    tables: list[EvidenceTable] = []
    for key, value in evidence.items():
        if _is_record_list(value):
            tables.append(_record_table(str(key), value))
        elif isinstance(value, dict) and value:
            tables.append(_key_value_table(str(key), list(value.items())))
        else:
            scalars.append((str(key), value))
    if scalars:
        tables.insert(0, _key_value_table(None, scalars))
    return tables


def code_segments(step: str) -> list[tuple[str, bool]]:
    """Split a remediation step into (text, is_code): `backticks`, else upper-case SQL."""
    if step.count("`") >= 2 and step.count("`") % 2 == 0:
        parts = step.split("`")
        return [(part, index % 2 == 1) for index, part in enumerate(parts) if part]
    segments: list[tuple[str, bool]] = []
    position = 0
    for match in _SQL.finditer(step):
        code = match.group(0).rstrip()
        trailing = ""
        if code.endswith(".") and not code.endswith(".."):
            code, trailing = code[:-1], "."
        if match.start() > position:
            segments.append((step[position : match.start()], False))
        segments.append((code, True))
        if trailing:
            segments.append((trailing, False))
        position = match.end()
    if position < len(step):
        segments.append((step[position:], False))
    return segments


def pretty_json(value: Any) -> str:
    """Indented JSON for the raw-evidence view."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)
