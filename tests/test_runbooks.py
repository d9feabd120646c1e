"""Runbooks: the files, the validator, their SQL on a real PostgreSQL, the mkdocs build, the CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pooldoctor.runbooks as runbooks_module
from pooldoctor.cli import main
from pooldoctor.runbooks import (
    REQUIRED_SECTIONS,
    RUNBOOK_SLUGS,
    RunbookError,
    UnknownRunbook,
    get_runbook,
    load_runbooks,
    parse_runbook,
    runbook_path,
    runbooks_dir,
    validate_runbook,
)

REPO_RUNBOOKS = Path(__file__).resolve().parent.parent / "runbooks"
MKDOCS_BUILD_TIMEOUT_SECONDS = 120
SQL_STATEMENT_TIMEOUT = "5s"
WAITER_LOCK_TIMEOUT = "20s"  # queued writers give up on their own if the test breaks
LOCK_WAIT_DEADLINE_SECONDS = 10.0
CANCEL_SETTLE_SECONDS = 0.5  # long enough for a cancel to have released the lock if it could
WRITER_JOIN_SECONDS = 25.0

VALID_TEXT = """---
title: Example
description: One line.
severity: warning
tags: [pool]
alerts: [PoolSaturated]
symptoms: ["QueuePool limit of size"]
related: [slow-queries]
---

## Meaning

Text.

## Impact

Text.

## Diagnosis

```sql
SELECT 1;
```

## Mitigation

1. Do it.

## Prevention

Text.

## Related

- [Slow queries](slow-queries.md)
"""


# --- the files -------------------------------------------------------------------------------


def test_default_directory_is_the_repo_runbooks_folder() -> None:
    assert runbooks_dir() == REPO_RUNBOOKS


def test_every_slug_has_a_file_and_every_file_is_a_slug() -> None:
    on_disk = {path.stem for path in REPO_RUNBOOKS.glob("*.md")}
    assert on_disk == set(RUNBOOK_SLUGS)
    assert len(RUNBOOK_SLUGS) == len(set(RUNBOOK_SLUGS)) == 16


@pytest.mark.parametrize("slug", RUNBOOK_SLUGS)
def test_runbook_validates(slug: str) -> None:
    runbook = get_runbook(slug)
    assert validate_runbook(runbook) == []
    assert runbook.sections == REQUIRED_SECTIONS
    assert runbook.symptoms and all(symptom.strip() for symptom in runbook.symptoms)
    assert runbook.alerts, "every runbook names the alerts that should link to it"


@pytest.mark.parametrize("slug", RUNBOOK_SLUGS)
def test_relative_links_point_at_existing_runbook_files(slug: str) -> None:
    runbook = get_runbook(slug)
    assert runbook.links(), "the Related section links its runbooks"
    for target in runbook.links():
        assert (runbook_path(slug).parent / target).is_file(), target


@pytest.mark.parametrize("slug", RUNBOOK_SLUGS)
def test_diagnosis_names_a_pooldoctor_command(slug: str) -> None:
    diagnosis = _section_text(get_runbook(slug).body, "Diagnosis")
    assert "pooldoctor diagnose" in diagnosis


def test_related_graph_has_no_dangling_or_self_edges() -> None:
    runbooks = load_runbooks()
    for slug, runbook in runbooks.items():
        assert slug not in runbook.related
        assert set(runbook.related) <= set(runbooks)


# --- the validator catches broken runbooks ----------------------------------------------------


def test_valid_example_has_no_problems() -> None:
    assert validate_runbook(parse_runbook("pool-undersized", VALID_TEXT)) == []


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("severity: warning\n", "", "missing front-matter key 'severity'"),
        ("severity: warning", "severity: bad", "severity 'bad' is not one of"),
        ('symptoms: ["QueuePool limit of size"]', "symptoms: []", "symptoms is empty"),
        ("related: [slow-queries]", "related: [slow-query]", "related slug 'slow-query'"),
        ("[Slow queries](slow-queries.md)", "Slow queries", "is not linked in the Related"),
        ("## Impact", "## Effects", "missing section '## Impact'"),
        (
            "## Meaning\n\nText.\n\n## Impact\n\nText.",
            "## Impact\n\nText.\n\n## Meaning\n\nText.",
            "out of order",
        ),
        ("```sql", "```", "code fence without a language"),
        ("1. Do it.", "1. Do <b>it</b>.", "raw HTML"),
        (
            "- [Slow queries](slow-queries.md)",
            "- [Slow queries](../slow-queries.md)",
            "does not point",
        ),
    ],
)
def test_validator_reports_problem(old: str, new: str, problem: str) -> None:
    assert old in VALID_TEXT
    problems = validate_runbook(parse_runbook("pool-undersized", VALID_TEXT.replace(old, new, 1)))
    assert any(problem in line for line in problems), problems


def test_headings_inside_code_blocks_are_not_sections() -> None:
    text = VALID_TEXT.replace("SELECT 1;", "## Not a section\nSELECT 1;")
    runbook = parse_runbook("pool-undersized", text)
    assert runbook.sections == REQUIRED_SECTIONS
    assert validate_runbook(runbook) == []


@pytest.mark.parametrize(
    "text", ["no front matter\n", "---\ntitle: [unclosed\n---\nbody\n", "---\n- a\n---\n"]
)
def test_unparseable_runbook_raises_a_one_line_error(text: str) -> None:
    with pytest.raises(RunbookError) as caught:
        parse_runbook("pool-undersized", text)
    assert "\n" not in str(caught.value)


def test_load_runbooks_from_another_directory(tmp_path: Path) -> None:
    (tmp_path / "slow-queries.md").write_text(VALID_TEXT, encoding="utf-8")
    loaded = load_runbooks(tmp_path)
    assert list(loaded) == ["slow-queries"]
    assert loaded["slow-queries"].title == "Example"
    with pytest.raises(RunbookError):
        load_runbooks(tmp_path / "missing")


def test_installed_package_falls_back_to_package_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packaged = tmp_path / "site-packages" / "pooldoctor" / "_runbooks"
    packaged.mkdir(parents=True)
    for path in REPO_RUNBOOKS.glob("*.md"):
        (packaged / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(runbooks_module, "_SOURCE_DIR", tmp_path / "no-checkout" / "runbooks")
    monkeypatch.setattr(runbooks_module, "PACKAGE_DATA_DIR", str(packaged))
    assert runbooks_dir() == packaged
    assert get_runbook("slow-queries") == parse_runbook(
        "slow-queries", (REPO_RUNBOOKS / "slow-queries.md").read_text(encoding="utf-8")
    )


def test_missing_runbooks_is_a_one_line_cli_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(runbooks_module, "_SOURCE_DIR", tmp_path / "no-checkout")
    monkeypatch.setattr(runbooks_module, "PACKAGE_DATA_DIR", str(tmp_path / "no-package-data"))
    with pytest.raises(RunbookError, match="runbooks not found"):
        runbooks_dir()
    assert main(["runbooks", "list"]) == 65
    assert main(["runbooks", "show", "slow-queries"]) == 65
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(
        line.startswith("pooldoctor: error: runbooks not found") for line in err
    )


def test_unknown_slug_suggests_the_closest_one() -> None:
    with pytest.raises(UnknownRunbook) as caught:
        get_runbook("conection-leak")
    assert isinstance(caught.value, KeyError)
    assert str(caught.value) == "unknown runbook 'conection-leak'; did you mean 'connection-leak'?"
    with pytest.raises(UnknownRunbook, match="pooldoctor runbooks list"):
        runbook_path("zzzz")


# --- the mkdocs site renders the same files -----------------------------------------------------


def test_mkdocs_strict_build_resolves_every_link(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    config = tmp_path / "mkdocs.yml"
    config.write_text(
        "site_name: runbooks\n"
        f"docs_dir: {REPO_RUNBOOKS}\n"
        f"site_dir: {tmp_path / 'site'}\n"
        "theme: {name: material}\n"
        "markdown_extensions: [tables, admonition, pymdownx.superfences]\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-f", str(config)],
        capture_output=True,
        text=True,
        timeout=MKDOCS_BUILD_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for slug in RUNBOOK_SLUGS:
        html = (tmp_path / "site" / slug / "index.html").read_text(encoding="utf-8")
        assert "```" not in html, f"{slug}: a code fence was not rendered"
        assert get_runbook(slug).title.split()[0] in html


# --- the CLI --------------------------------------------------------------------------------


def test_cli_list_shows_every_slug(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runbooks", "list"]) == 0
    out = capsys.readouterr().out
    for slug in RUNBOOK_SLUGS:
        assert re.search(rf"\b{re.escape(slug)}\b", out), slug
    assert "critical" in out and "warning" in out


def test_cli_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runbooks", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["slug"] for row in rows] == list(RUNBOOK_SLUGS)
    leak = rows[0]
    assert leak["title"] == "Connection leak"
    assert leak["severity"] == "critical"
    assert "PoolCheckoutsStuck" in leak["alerts"]
    assert set(leak) >= {"description", "tags", "symptoms", "related"}


def test_cli_show_renders_header_and_sections(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["runbooks", "show", "lock-contention"]) == 0
    out = capsys.readouterr().out
    runbook = get_runbook("lock-contention")
    assert runbook.title in out and "CRITICAL" in out
    for symptom in runbook.symptoms:
        assert symptom in out
    assert "PostgresLockWaits" in out
    positions = [out.index(section) for section in REQUIRED_SECTIONS]
    assert positions == sorted(positions)
    assert "pg_terminate_backend" in out
    assert "## " not in out and "---\ntitle:" not in out


def test_cli_show_raw_prints_the_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runbooks", "show", "slow-queries", "--raw"]) == 0
    assert capsys.readouterr().out == runbook_path("slow-queries").read_text(encoding="utf-8")


def test_cli_show_unknown_slug_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runbooks", "show", "lock-contension"]) == 64
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert "did you mean 'lock-contention'?" in lines[0]


def test_cli_runbooks_without_subcommand_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["runbooks"]) == 64
    captured = capsys.readouterr()
    assert "show" in captured.out + captured.err


# --- helpers ----------------------------------------------------------------------------------


def _section_text(body: str, name: str) -> str:
    match = re.search(rf"^## {name}\n(.*?)(?=^## |\Z)", body, re.M | re.S)
    assert match, name
    return match.group(1)
