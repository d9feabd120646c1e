"""`pooldoctor scan`: the annotated corpus matches exactly; formats, exit codes, suppressions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pooldoctor.cli import main
from pooldoctor.runbooks import RUNBOOK_SLUGS
from pooldoctor.scan import RULES, ScanInputError, scan
from pooldoctor.scan.suppress import is_suppressed

CORPUS = Path(__file__).parent / "data" / "scan_corpus"
EXPECT = re.compile(r"#\s*expect:\s*(?P<rules>PD\d{3}(?:\s*,\s*PD\d{3})*)")

# Top-level files form one tree; each folder is its own tree (fork context is tree-wide).
CASES = [
    pytest.param(sorted(CORPUS.glob("*.py")), id="top-level"),
    *(
        pytest.param([folder], id=folder.name)
        for folder in sorted(CORPUS.iterdir())
        if folder.is_dir()
    ),
]


def _expected(paths: list[Path]) -> set[tuple[str, int, str]]:
    files = [p for path in paths for p in (sorted(path.rglob("*.py")) if path.is_dir() else [path])]
    expected = set()
    for file in files:
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
            if match := EXPECT.search(line):
                for rule in match.group("rules").split(","):
                    expected.add((file.relative_to(CORPUS).as_posix(), number, rule.strip()))
    return expected


@pytest.mark.parametrize("paths", CASES)
def test_corpus_findings_match_annotations_exactly(paths: list[Path]) -> None:
    result = scan(paths)
    found = {(f.path.relative_to(CORPUS).as_posix(), f.line, f.rule_id) for f in result.findings}
    assert found == _expected(paths)


def test_every_rule_has_a_corpus_example_and_a_known_runbook() -> None:
    everything = _expected([CORPUS])
    assert {rule for _, _, rule in everything} == set(RULES)
    assert {rule.runbook for rule in RULES.values()} <= set(RUNBOOK_SLUGS)


BROKEN = '''"""Does not parse."""


def broken(:
    pass
'''


def test_syntax_error_is_reported_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text(BROKEN, encoding="utf-8")
    result = scan([tmp_path, CORPUS / "sessions_leaky.py"])
    [error] = result.errors
    assert error.path.name == "broken.py"
    assert error.line == 4
    assert error.message.startswith("syntax error")
    assert result.findings


def test_syntax_error_in_sarif_and_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "broken.py").write_text(BROKEN, encoding="utf-8")
    assert main(["scan", "--format", "sarif", str(tmp_path)]) == 0
    [run] = json.loads(capsys.readouterr().out)["runs"]
    assert run["results"] == []
    [notice] = run["invocations"][0]["toolExecutionNotifications"]
    location = notice["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": "pkg/broken.py", "uriBaseId": "%SRCROOT%"}
    assert location["region"]["startLine"] == 4


def test_cli_exit_codes_and_text(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["scan", str(CORPUS / "sessions_leaky.py")]) == 1
    out = capsys.readouterr().out
    assert "sessions_leaky.py:13:15: PD101 `session` = SessionLocal() is closed only on the " in out
    assert "[runbook: connection-leak]" in out
    assert main(["scan", str(CORPUS / "sessions_correct.py")]) == 0
    assert "0 findings in 1 file(s) scanned." in capsys.readouterr().out
    missing = tmp_path / "nope"
    assert main(["scan", str(missing)]) == 64
    err = capsys.readouterr().err
    assert err == f"pooldoctor: error: no such file or directory: {missing}\n"
    assert main(["scan", "--format", "xml", str(CORPUS)]) == 64


def test_scan_api_rejects_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ScanInputError):
        scan([tmp_path / "missing.py"])


def test_json_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "--format", "json", str(CORPUS / "fastapi_app")]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["schema"] == "pooldoctor.scan/1"
    rules = [finding["rule"] for finding in document["findings"]]
    assert rules == ["PD201", "PD202", "PD202", "PD203"]
    first = document["findings"][0]
    assert first["path"].endswith("scan_corpus/fastapi_app/db.py")
    assert (first["line"], first["column"], first["runbook"]) == (27, 5, "connection-leak")
    assert first["runbook_command"] == "pooldoctor runbooks show connection-leak"
    assert document["errors"] == []


def test_sarif_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "--format", "sarif", str(CORPUS)]) == 1
    sarif = json.loads(capsys.readouterr().out)
    assert sarif["version"] == "2.1.0"
    [run] = sarif["runs"]
    rule_ids = [rule["id"] for rule in run["tool"]["driver"]["rules"]]
    assert rule_ids == sorted(RULES)
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == CORPUS.resolve().as_uri() + "/"
    locations = {
        (
            result["ruleId"],
            result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            result["locations"][0]["physicalLocation"]["region"]["startLine"],
        )
        for result in run["results"]
    }
    assert ("PD201", "fastapi_app/db.py", 27) in locations
    for result in run["results"]:
        location = result["locations"][0]["physicalLocation"]["artifactLocation"]
        assert location["uriBaseId"] == "%SRCROOT%"
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
    assert run["invocations"][0]["toolExecutionNotifications"] == []


@pytest.mark.parametrize(
    ("line", "rule", "suppressed"),
    [
        ("x = f()  # pooldoctor: ignore", "PD101", True),
        ("x = f()  # pooldoctor: ignore[PD101]", "PD101", True),
        ("x = f()  # pooldoctor: ignore[PD102, pd101]", "PD101", True),
        ("x = f()  # pooldoctor: ignore[PD102]", "PD101", False),
        ("x = f()  # noqa", "PD101", False),
    ],
)
def test_suppression_comments(line: str, rule: str, suppressed: bool) -> None:
    assert is_suppressed([line], 1, 1, rule) is suppressed


def test_deploy_files_in_skipped_folders_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        'from sqlalchemy import create_engine\ne = create_engine("x")\n'
    )
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "Procfile").write_text("web: gunicorn --preload app:app\n")
    assert scan([tmp_path]).findings == ()
    (tmp_path / "Procfile").write_text("web: gunicorn --preload app:app\n")
    assert [f.rule_id for f in scan([tmp_path]).findings] == ["PD301"]
