"""The package's layer rules, read from its own import statements (AST, no imports executed)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pooldoctor"
# Shared infrastructure of the checks package; every other module there is one check family.
CHECK_INFRASTRUCTURE = frozenset({"__init__", "common", "registry", "spec"})


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every pooldoctor module a file imports, at any depth (function-level imports too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] == "pooldoctor"}


MODULES = {_module_name(path): _imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def _inside(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _violations(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{module} imports {imported}"
        for module, imports in MODULES.items()
        if _inside(module, layer)
        for imported in imports
        if any(_inside(imported, other) for other in forbidden)
    )


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        (
            "pooldoctor.collect",
            (
                "pooldoctor.commands",
                "pooldoctor.checks",
                "pooldoctor.readings",
                "pooldoctor.report",
                "pooldoctor.lab",
                "pooldoctor.diagnosis",
            ),
        ),
        ("pooldoctor.report", ("pooldoctor.collect", "pooldoctor.commands", "pooldoctor.lab")),
        (
            "pooldoctor.readings",
            (
                "pooldoctor.collect",
                "pooldoctor.checks",
                "pooldoctor.report",
                "pooldoctor.commands",
                "pooldoctor.lab",
            ),
        ),
        ("pooldoctor.checks", ("pooldoctor.collect", "pooldoctor.report", "pooldoctor.lab")),
        ("pooldoctor.evidence", ("pooldoctor.collect", "pooldoctor.checks", "pooldoctor.readings")),
    ],
)
def test_layer_imports_nothing_above_it(layer: str, forbidden: tuple[str, ...]) -> None:
    assert _violations(layer, forbidden) == []


def test_no_check_family_imports_another() -> None:
    families = {
        module
        for module in MODULES
        if module.startswith("pooldoctor.checks.")
        and module.rsplit(".", 1)[1] not in CHECK_INFRASTRUCTURE
    }
    crossing = sorted(
        f"{module} imports {imported}"
        for module in families
        for imported in MODULES[module]
        if any(_inside(imported, other) for other in families - {module})
    )
    assert len(families) >= 10  # the rule is about something
    assert crossing == []


def test_the_report_derives_from_readings_not_evidence() -> None:
    """Only report.build holds the Evidence (to read it once); every other report module takes
    the Readings the checks judged, so the two cannot derive a fact two ways."""
    whole = ("pooldoctor.evidence.Evidence", "pooldoctor.evidence.PostgresEvidence")
    importers = sorted(
        module
        for module, imports in MODULES.items()
        if _inside(module, "pooldoctor.report") and any(name in imports for name in whole)
    )
    assert importers == ["pooldoctor.report.build"]


def test_only_the_lab_and_the_commands_import_the_lab() -> None:
    importers = sorted(
        module
        for module, imports in MODULES.items()
        if not _inside(module, "pooldoctor.lab")
        and any(_inside(imported, "pooldoctor.lab") for imported in imports)
    )
    assert all(_inside(module, "pooldoctor.commands") for module in importers), importers


def test_the_rules_see_a_violation() -> None:
    """The checker itself: a planted import across layers is reported."""
    MODULES["pooldoctor.collect.planted"] = {"pooldoctor.report.build"}
    try:
        assert _violations("pooldoctor.collect", ("pooldoctor.report",)) == [
            "pooldoctor.collect.planted imports pooldoctor.report.build"
        ]
    finally:
        del MODULES["pooldoctor.collect.planted"]
