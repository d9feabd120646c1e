"""Config collector: env-file syntax, key prefixes and case, units, precedence, bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from pooldoctor.collect.config import parse_bool, parse_seconds, read_config, split_assignment

DATA = Path(__file__).parent / "data" / "config"


def test_reads_every_setting_with_prefixes_case_and_units() -> None:
    config = read_config([str(DATA / "app.env")], workers=None)
    assert config.pool_size == 20
    assert config.max_overflow == 10
    assert config.pool_timeout == 30.0
    assert config.pool_recycle == 1800.0
    assert config.pool_pre_ping is True
    assert config.statement_timeout == 10.0
    assert config.connect_timeout == pytest.approx(0.5)
    assert config.pool_use_lifo is False
    assert config.workers == 4
    assert config.problems == ()
    assert config.files == (str(DATA / "app.env"),)


def test_never_copies_other_values_such_as_database_url() -> None:
    config = read_config([str(DATA / "app.env")], workers=None)
    assert "s3cret" not in repr(config)


def test_later_files_override_and_bad_values_become_problems() -> None:
    config = read_config([str(DATA / "app.env"), str(DATA / "override.env")], workers=None)
    assert config.pool_size == 5
    assert config.workers == 8
    assert config.pool_timeout == 30.0  # the bad override is ignored
    assert config.max_overflow == 10
    assert config.pool_pre_ping is True
    assert config.problems == (
        "override.env:3: POOL_TIMEOUT='abc' is not a duration (seconds, or a number with "
        "ms/s/min/h/d)",
        "override.env:4: MAX_OVERFLOW='ten' is not a whole number",
        "override.env:5: POOL_PRE_PING='maybe' is not a boolean (true/false, 1/0, yes/no, on/off)",
    )


def test_workers_flag_overrides_files() -> None:
    config = read_config([str(DATA / "app.env")], workers=12)
    assert config.workers == 12
    assert read_config([], workers=3).workers == 3


def test_unreadable_file_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    missing = tmp_path / "nope.env"
    config = read_config([str(missing), str(DATA / "override.env")], workers=None)
    assert config.problems[0] == f"{missing}: cannot read: No such file or directory"
    assert config.pool_size == 5
    assert config.files == (str(DATA / "override.env"),)
    directory = read_config([str(tmp_path)], workers=None)
    assert directory.problems and "cannot read" in directory.problems[0]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("POOL_SIZE=5", ("POOL_SIZE", "5")),
        ("export DB_POOL_SIZE=7", ("DB_POOL_SIZE", "7")),
        ("  POOL_SIZE = 9  # comment", ("POOL_SIZE", "9")),
        ("POOL_SIZE='11' # quoted", ("POOL_SIZE", "11")),
        ('POOL_SIZE="a # not a comment"', ("POOL_SIZE", "a # not a comment")),
        ("POOL_SIZE=12#kept", ("POOL_SIZE", "12#kept")),
        ("# POOL_SIZE=5", None),
        ("", None),
        ("not an assignment", None),
    ],
)
def test_env_line_syntax(line: str, expected: tuple[str, str] | None) -> None:
    assert split_assignment(line) == expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10", 10.0), ("10.0", 10.0), ("500ms", 0.5), ("30s", 30.0), ("5min", 300.0),
     ("1h", 3600.0), ("2 d", 172800.0), (".5", 0.5)],
)  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert parse_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["abc", "10 parsecs", "", "-5"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_seconds(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("On", True),
     ("false", False), ("0", False), ("no", False), ("off", False)],
)  # fmt: skip
def test_booleans(text: str, value: bool) -> None:
    assert parse_bool(text) is value


def test_application_name_from_pgappname_or_a_dsn_and_nothing_else_of_the_dsn(
    tmp_path: Path,
) -> None:
    dsn_env = tmp_path / "dsn.env"
    dsn_env.write_text(
        'DATABASE_URL="postgresql://app:s3cret@db:5432/shop?sslmode=require&application_name=orders%2Dapi"\n',
        encoding="utf-8",
    )
    from_dsn = read_config([str(dsn_env)], workers=None)
    assert from_dsn.application_name == "orders-api"
    assert "s3cret" not in repr(from_dsn) and "sslmode" not in repr(from_dsn)
    named = tmp_path / "named.env"
    named.write_text("PGAPPNAME=billing\n", encoding="utf-8")
    assert read_config([str(named)], workers=None).application_name == "billing"
    assert read_config([str(DATA / "app.env")], workers=None).application_name is None
