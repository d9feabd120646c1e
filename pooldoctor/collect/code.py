"""Run `pooldoctor scan` on the app files that logged frames and holder origins name, when
they are readable here, and keep the findings that fall inside those frames' functions."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path

from pooldoctor.evidence import CodeFlag, Evidence
from pooldoctor.scan.model import ScanResult
from pooldoctor.scan.parse import parse_module
from pooldoctor.scan.scanner import scan

MAX_FILES = 20  # the few frames a report names; never a tree walk
MAX_FILE_BYTES = 1_000_000
_FRAME = re.compile(r"^(?P<path>.+?):(?P<line>\d+) in (?P<func>[\w.<>]+)$")


def named_frames(evidence: Evidence) -> list[str]:
    """App frames of logged exceptions and origins of pool holders, most recent first."""
    frames: list[str] = []
    for log in evidence.logs:
        if log.app is not None:
            frames += [e.app_frame for e in reversed(log.app.exceptions) if e.app_frame]
    frames += [h.origin for i in evidence.pools for s in i.samples for h in s.holders]
    return list(dict.fromkeys(frames))


def _function_span(tree: ast.Module, line: int, name: str) -> tuple[int, int] | None:
    best: tuple[int, int] | None = None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            end = node.end_lineno or node.lineno
            if node.lineno <= line <= end and (best is None or node.lineno > best[0]):
                best = (node.lineno, end)
    return best


def _parse_and_scan(path: Path) -> tuple[ast.Module, ScanResult] | None:
    """The file's tree and scan result; None when it cannot be read or parsed here."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            return None
        return parse_module(path.read_text(encoding="utf-8"), str(path)), scan([path])
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError, RecursionError, SystemError):
        # A file the scan cannot take is skipped: the code scan never aborts a capture.
        return None


def scan_frames(frames: Iterable[str]) -> tuple[CodeFlag, ...]:
    """Scan findings inside each frame's function; unreadable or absent files are skipped."""
    by_path: dict[Path, list[tuple[str, int, str]]] = {}
    for frame in frames:
        match = _FRAME.match(frame)
        if match is None:
            continue
        path = Path(match["path"])
        if path not in by_path and len(by_path) >= MAX_FILES:
            continue
        by_path.setdefault(path, []).append((frame, int(match["line"]), match["func"]))
    flags: list[CodeFlag] = []
    for path, wanted in by_path.items():
        parsed = _parse_and_scan(path)
        if parsed is None:
            continue
        tree, result = parsed
        for frame, line, func in wanted:
            span = _function_span(tree, line, func.rsplit(".", 1)[-1])
            if span is None:
                continue
            flags += [
                CodeFlag(frame, str(path), f.line, f.rule_id, f.message)
                for f in result.findings
                if span[0] <= f.line <= span[1]
            ]
    return tuple(dict.fromkeys(flags))
