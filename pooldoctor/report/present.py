"""Presentation helpers shared by the markdown and HTML templates: evidence tables, code spans."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pooldoctor.readings.text import shorten

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


# Words of evidence keys spelled out for readers (the raw keys stay in report.json).
_WORDS = {
    "pid": "PID",
    "pids": "PIDs",
    "xact": "transaction",
    "usename": "user",
    "datname": "database",
    "url": "URL",
    "sql": "SQL",
    "id": "ID",
    "gc": "garbage-collector",
    "num": "number",
    "tz": "time zone",
}
# Evidence keys that are bookkeeping for the report itself, not something to read.
_HIDDEN_KEYS = frozenset({"points_to"})


@dataclass(frozen=True)
class EvidenceTable:
    """One table derived from a finding's evidence dict."""

    title: str | None
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    omitted: int = 0
    key_value: bool = False


def label(key: str) -> str:
    """An evidence key in words: `stuck_backends` -> `Stuck backends`, `pid` -> `PID`.

    >>> label("xact_start_seconds")
    'Transaction start seconds'
    """
    if key == "at":
        return "At (UTC)"
    words = [_WORDS.get(word, word) for word in str(key).replace("-", "_").split("_") if word]
    text = " ".join(words) or str(key)
    return text[0].upper() + text[1:]


def is_empty(value: Any) -> bool:
    """Nothing to show: None, empty text or collection, or a collection of only zeros/empties."""
    if value is None or value == "" or value == [] or value == {}:
        return True
    if isinstance(value, dict):
        return value.get("count") == 0 or all(is_empty(v) or v == 0 for v in value.values())
    if isinstance(value, list):
        return all(is_empty(v) or (v == 0 and not isinstance(v, bool)) for v in value)
    return False


_ISO_UTC = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.\d+)?Z$")


def cell(value: Any) -> str:
    """A JSON-ready value as short table text; UTC timestamps as `2026-11-21 09:31:04`."""
    if value is None:
        return "—"
    if isinstance(value, str) and (moment := _ISO_UTC.match(value)):
        return f"{moment.group(1)} {moment.group(2)}"
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
    keys: list[str] = []
    for record in records:
        keys.extend(str(key) for key in record if str(key) not in keys)
    keys = [key for key in keys if not all(is_empty(record.get(key)) for record in records)]
    rows = tuple(
        tuple(cell(record.get(key)) for key in keys) for record in records[:MAX_EVIDENCE_ROWS]
    )
    columns = tuple(label(key) for key in keys)
    return EvidenceTable(label(title), columns, rows, max(0, len(records) - MAX_EVIDENCE_ROWS))


def _series_keys(record: Mapping[str, Any]) -> list[str]:
    """Keys of a record holding one value per sample: lists of scalars, all of one length."""
    lists = {
        str(key): value
        for key, value in record.items()
        if isinstance(value, list) and value and not any(isinstance(v, dict | list) for v in value)
    }
    lengths = {len(value) for value in lists.values()}
    return list(lists) if len(lists) > 1 and len(lengths) == 1 else []


def _series_table(title: str, record: Mapping[str, Any]) -> EvidenceTable:
    """A record of per-sample series (`at`, `checked_out`, …) as one row per sample."""
    keys = _series_keys(record)
    keys.sort(key=lambda key: key != "at")
    named = [f"{cell(v)}" for k, v in record.items() if str(k) not in keys and not is_empty(v)]
    count = len(record[keys[0]])
    rows = tuple(
        tuple(cell(record[key][index]) for key in keys)
        for index in range(min(count, MAX_EVIDENCE_ROWS))
    )
    heading = f"{label(title)}: {', '.join(named)}" if named else label(title)
    return EvidenceTable(
        heading, tuple(label(key) for key in keys), rows, max(0, count - MAX_EVIDENCE_ROWS)
    )


def _records_tables(title: str, records: Sequence[Mapping[str, Any]]) -> list[EvidenceTable]:
    """A list of records as a table, or one table per record when each holds sample series."""
    if all(_series_keys(record) for record in records):
        return [_series_table(title, record) for record in records]
    return [_record_table(title, records)]


def _key_value_table(title: str | None, items: Sequence[tuple[str, Any]]) -> EvidenceTable:
    shown = [(key, value) for key, value in items if not is_empty(value)]
    rows = tuple((label(key), cell(value)) for key, value in shown[:MAX_EVIDENCE_ROWS])
    return EvidenceTable(
        title and label(title),
        ("Reading", "Value"),
        rows,
        max(0, len(shown) - MAX_EVIDENCE_ROWS),
        key_value=True,
    )


def evidence_tables(evidence: Mapping[str, Any]) -> list[EvidenceTable]:
    """Scalars -> one reading/value table; lists of dicts, dicts (and those nested in them) -> a
    table each; no empties."""
    scalars: list[tuple[str, Any]] = []
    tables: list[EvidenceTable] = []
    for key, value in evidence.items():
        if str(key) in _HIDDEN_KEYS or is_empty(value):
            continue
        if _is_record_list(value):
            tables.extend(_records_tables(str(key), value))
        elif isinstance(value, dict):
            nested = [
                (k, v)
                for k, v in value.items()
                if (_is_record_list(v) or isinstance(v, dict)) and not is_empty(v)
            ]
            flat = [(k, v) for k, v in value.items() if (k, v) not in nested]
            tables.append(_key_value_table(str(key), flat))
            for nested_key, inner in nested:
                title = f"{key} {nested_key}"
                if isinstance(inner, dict):
                    tables.append(_key_value_table(title, list(inner.items())))
                else:
                    tables.extend(_records_tables(title, inner))
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


def step_code(step: str) -> tuple[str, ...]:
    """The code parts of a remediation step (backtick spans, else upper-case SQL), stripped."""
    return tuple(text.strip() for text, is_code in code_segments(step) if is_code and text.strip())


# `SET name = 'value'` and `SET name TO value`, as in ALTER ROLE / ALTER SYSTEM / SET.
_ASSIGNMENT = re.compile(
    r"\bSET\s+(?P<name>[a-z_][a-z0-9_.]*)\s*(?:=|\bTO\b)\s*'?(?P<value>[^';\s]+)",
    re.IGNORECASE,
)


def setting_assignments(step: str) -> dict[str, str]:
    """Server settings a step's code assigns: {name: value} (`SET x = '5min'` -> {x: 5min})."""
    return {
        match.group("name").lower(): match.group("value")
        for code in step_code(step)
        for match in _ASSIGNMENT.finditer(code)
    }


_SHELL_COMMANDS = ("pooldoctor ", "psql ", "kubectl ", "systemctl ", "pgbouncer ")


def is_command(code: str) -> bool:
    """A code span one can paste and run (SQL statement or shell command), not a code hint."""
    text = code.strip()
    return bool(_SQL.fullmatch(text)) or text.startswith(_SHELL_COMMANDS)


def pretty_json(value: Any) -> str:
    """Indented JSON for the raw-evidence view."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)
