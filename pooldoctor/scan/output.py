"""Render a scan result as text (one line per finding), JSON, or SARIF 2.1.0."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, assert_never

from pooldoctor import __version__
from pooldoctor.scan.formats import ScanFormat
from pooldoctor.scan.model import ScanResult
from pooldoctor.scan.rules import RULES

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SRCROOT = "%SRCROOT%"
JSON_SCHEMA = "pooldoctor.scan/1"


def display_path(path: Path, cwd: Path | None = None) -> str:
    """Relative to the working directory when below it, else absolute (POSIX separators)."""
    absolute = path.resolve()
    try:
        return absolute.relative_to((cwd or Path.cwd()).resolve()).as_posix()
    except ValueError:
        return absolute.as_posix()


def _root_relative(path: Path, root: Path) -> str:
    absolute = path.resolve()
    try:
        return absolute.relative_to(root).as_posix()
    except ValueError:
        return absolute.as_posix()


def render_text(result: ScanResult) -> str:
    lines = [
        f"{display_path(f.path)}:{f.line}:{f.column}: {f.rule_id} {f.message} "
        f"[runbook: {RULES[f.rule_id].runbook}]"
        for f in result.findings
    ]
    lines.extend(
        f"{display_path(e.path)}:{e.line}:{e.column}: error: {e.message}" for e in result.errors
    )
    count = len(result.findings)
    noun = "finding" if count == 1 else "findings"
    lines.append(f"{count} {noun} in {result.files_scanned} file(s) scanned.")
    if count:
        lines.append("Explain a rule and its fix: pooldoctor runbooks show <runbook>.")
    return "\n".join(lines) + "\n"


def render_json(result: ScanResult) -> str:
    document = {
        "schema": JSON_SCHEMA,
        "root": result.root.as_posix(),
        "files_scanned": result.files_scanned,
        "findings": [
            {
                "path": display_path(f.path),
                "line": f.line,
                "column": f.column,
                "rule": f.rule_id,
                "name": RULES[f.rule_id].name,
                "message": f.message,
                "explanation": RULES[f.rule_id].explanation,
                "runbook": RULES[f.rule_id].runbook,
                "runbook_command": RULES[f.rule_id].runbook_command,
            }
            for f in result.findings
        ],
        "errors": [
            {"path": display_path(e.path), "line": e.line, "column": e.column, "message": e.message}
            for e in result.errors
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def _location(path: Path, root: Path, line: int, column: int) -> dict[str, Any]:
    return {
        "physicalLocation": {
            "artifactLocation": {"uri": _root_relative(path, root), "uriBaseId": SRCROOT},
            "region": {"startLine": line, "startColumn": column},
        }
    }


def render_sarif(result: ScanResult) -> str:
    rule_ids = sorted(RULES)
    rules = [
        {
            "id": rule.id,
            "name": rule.name,
            "shortDescription": {"text": rule.title},
            "fullDescription": {"text": rule.explanation},
            "help": {"text": f"{rule.explanation} Runbook: {rule.runbook_command}"},
            "defaultConfiguration": {"level": "warning"},
            "properties": {"runbook": rule.runbook},
        }
        for rule in (RULES[rule_id] for rule_id in rule_ids)
    ]
    results = [
        {
            "ruleId": f.rule_id,
            "ruleIndex": rule_ids.index(f.rule_id),
            "level": "warning",
            "message": {"text": f.message},
            "locations": [_location(f.path, result.root, f.line, f.column)],
        }
        for f in result.findings
    ]
    notifications = [
        {
            "level": "error",
            "message": {"text": e.message},
            "locations": [_location(e.path, result.root, e.line, e.column)],
        }
        for e in result.errors
    ]
    document = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "pooldoctor",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "rules": rules,
                    }
                },
                "originalUriBaseIds": {SRCROOT: {"uri": result.root.as_uri() + "/"}},
                "invocations": [
                    {"executionSuccessful": True, "toolExecutionNotifications": notifications}
                ],
                "results": results,
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def render(result: ScanResult, output_format: ScanFormat) -> str:
    if output_format is ScanFormat.TEXT:
        return render_text(result)
    if output_format is ScanFormat.JSON:
        return render_json(result)
    if output_format is ScanFormat.SARIF:
        return render_sarif(result)
    assert_never(output_format)
