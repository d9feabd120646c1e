"""Run the scan: find files, learn tree-wide facts, apply the rules, drop suppressed findings."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from pooldoctor.scan.facts import ModuleInfo, ProjectFacts, collect_names
from pooldoctor.scan.fastapi import analyse_fastapi
from pooldoctor.scan.fork import ForkFacts, analyse_fork, learn_fork_facts, learn_fork_text
from pooldoctor.scan.leaks import LeakAnalysis, RawFinding, learn_factories
from pooldoctor.scan.model import ScanError, ScanFinding, ScanResult
from pooldoctor.scan.suppress import is_suppressed

SKIPPED_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", ".tox", ".nox",
        ".mypy_cache", ".ruff_cache", ".pytest_cache", "site-packages", "build", "dist", ".eggs",
    }
)  # fmt: skip
DEPLOY_FILE_SUFFIXES = frozenset(
    {".sh", ".toml", ".ini", ".cfg", ".yml", ".yaml", ".conf", ".json", ".service", ".env"}
)
DEPLOY_FILE_NAMES = frozenset({"Procfile", "Dockerfile", "Makefile", "docker-compose.yml"})
MAX_DEPLOY_FILE_BYTES = 1_000_000  # deploy configs are small; skip data files
FACT_PASSES = 2  # factories of factories: one more pass lets `get_session()` wrappers resolve


class ScanInputError(ValueError):
    """A path given on the command line does not exist."""


def scan_root(paths: list[Path]) -> Path:
    """The folder SARIF paths are relative to: the common parent of what was scanned."""
    folders = [path if path.is_dir() else path.parent for path in paths]
    return Path(os.path.commonpath([str(folder.resolve()) for folder in folders]))


def _walk(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for folder, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info"))
        for name in sorted(files):
            yield Path(folder) / name


def _is_deploy_file(path: Path) -> bool:
    return (
        path.name in DEPLOY_FILE_NAMES
        or path.name.startswith("Dockerfile")
        or (path.suffix in DEPLOY_FILE_SUFFIXES)
    )


def _error_of(path: Path, exc: SyntaxError | UnicodeDecodeError | ValueError) -> ScanError:
    if isinstance(exc, SyntaxError):
        return ScanError(path, exc.lineno or 1, exc.offset or 1, f"syntax error: {exc.msg}")
    return ScanError(path, 1, 1, f"cannot read: {exc}")


def _load(
    files: Iterable[Path], explicit: set[Path]
) -> tuple[list[ModuleInfo], list[ScanError], ForkFacts, int]:
    modules: list[ModuleInfo] = []
    errors: list[ScanError] = []
    fork = ForkFacts()
    scanned = 0
    for path in files:
        if path.suffix == ".py" or path in explicit:
            scanned += 1
            try:
                modules.append(ModuleInfo.parse(path, path.read_text(encoding="utf-8")))
            except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
                errors.append(_error_of(path, exc))
            except OSError as exc:
                errors.append(ScanError(path, 1, 1, f"cannot read: {exc.strerror or exc}"))
        elif _is_deploy_file(path):
            try:
                if path.stat().st_size <= MAX_DEPLOY_FILE_BYTES:
                    learn_fork_text(path, path.read_text(encoding="utf-8", errors="replace"), fork)
            except OSError:
                continue  # an unreadable deploy file only means less context
    return modules, errors, fork, scanned


def _to_finding(module: ModuleInfo, raw: RawFinding) -> ScanFinding | None:
    line = getattr(raw.node, "lineno", 1)
    end_line = getattr(raw.node, "end_lineno", line) or line
    if is_suppressed(module.lines, line, end_line, raw.rule_id):
        return None
    column = getattr(raw.node, "col_offset", 0) + 1
    return ScanFinding(module.path, line, column, raw.rule_id, raw.message)


def scan(paths: list[Path]) -> ScanResult:
    """Scan files and folders; raises ScanInputError for a path that does not exist."""
    missing = [path for path in paths if not path.exists()]
    if missing:
        raise ScanInputError(f"no such file or directory: {missing[0]}")
    explicit = {path for path in paths if path.is_file()}
    files = list(dict.fromkeys(file for path in paths for file in _walk(path)))
    modules, errors, fork, scanned = _load(files, explicit)
    facts = ProjectFacts()
    for module in modules:
        collect_names(module, facts)
        learn_fork_facts(module, fork)
    for _ in range(FACT_PASSES):
        for module in modules:
            learn_factories(module, facts)
    findings: list[ScanFinding] = []
    for module in modules:
        raw = [
            *LeakAnalysis(module, facts).run(),
            *analyse_fastapi(module, facts),
            *analyse_fork(module, fork),
        ]
        findings.extend(f for r in raw if (f := _to_finding(module, r)) is not None)
    return ScanResult(
        root=scan_root(paths),
        files_scanned=scanned,
        findings=tuple(sorted(set(findings))),
        errors=tuple(errors),
    )


__all__ = ["ScanInputError", "scan", "scan_root"]
