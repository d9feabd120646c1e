"""Pool configuration collector: read pool settings from KEY=VALUE env files (never raises)."""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote

from pooldoctor.collect.inputs import read_input
from pooldoctor.durations import BadDuration, parse_duration
from pooldoctor.evidence import PoolConfig
from pooldoctor.redact import redact

KEY_PREFIXES = ("DATABASE_", "DB_", "SQLALCHEMY_")
MAX_CONFIG_BYTES = 1024 * 1024  # env files are small; a huge one is the wrong file
MAX_DIGITS = 9
MAX_CONNECTIONS = 262_143  # PostgreSQL's own ceiling on max_connections
MAX_WORKERS = 100_000
MAX_DURATION_SECONDS = 10 * 365 * 86400

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class BadValue(ValueError):
    """A setting's value that cannot be read; the message says what was expected."""


def parse_whole(text: str) -> int:
    """A whole number (`10`, `+3`, `-1`) of at most MAX_DIGITS digits."""
    stripped = text.strip()
    if not re.fullmatch(rf"[+-]?\d{{1,{MAX_DIGITS}}}", stripped):
        raise BadValue("is not a whole number" + (" of sane size" if len(stripped) > 9 else ""))
    return int(stripped)


def whole_in(low: int, high: int, meaning: str) -> Callable[[str], object]:
    """A parser for whole numbers in [low, high]; `meaning` says what the range is."""

    def parse(text: str) -> int:
        number = parse_whole(text)
        if not low <= number <= high:
            raise BadValue(f"is out of range: {meaning}")
        return number

    return parse


def parse_seconds(text: str) -> float:
    """Seconds from `10`, `10.0`, `500ms`, `30s`, `5min`, `1h` (bare numbers are seconds)."""
    seconds = parse_duration(text, bare_unit="s")
    if not math.isfinite(seconds) or seconds > MAX_DURATION_SECONDS:
        raise BadValue(f"is out of range (at most {MAX_DURATION_SECONDS // 86400} days)")
    return seconds


def parse_bool(text: str) -> bool:
    """true/false, 1/0, yes/no, on/off (any case)."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise BadValue("is not a boolean (true/false, 1/0, yes/no, on/off)")


def parse_application_name(text: str) -> str:
    name = text.strip()
    if not name or len(name) > MAX_APPLICATION_NAME or not name.isprintable():
        raise BadValue(f"is not an application_name (1-{MAX_APPLICATION_NAME} printable chars)")
    return name


@dataclass(frozen=True)
class Setting:
    """Where a key's value goes in PoolConfig and how it is parsed."""

    field: str
    parse: Callable[[str], object]


SETTINGS: dict[str, Setting] = {
    "POOL_SIZE": Setting("pool_size", whole_in(0, MAX_CONNECTIONS, "0 or more connections")),
    "MAX_OVERFLOW": Setting(
        "max_overflow", whole_in(-1, MAX_CONNECTIONS, "0 or more, or -1 for unlimited")
    ),
    "POOL_TIMEOUT": Setting("pool_timeout", parse_seconds),
    "POOL_RECYCLE": Setting("pool_recycle", parse_seconds),
    "POOL_PRE_PING": Setting("pool_pre_ping", parse_bool),
    "POOL_USE_LIFO": Setting("pool_use_lifo", parse_bool),
    "STATEMENT_TIMEOUT": Setting("statement_timeout", parse_seconds),
    "CONNECTION_TIMEOUT": Setting("connect_timeout", parse_seconds),
    "CONNECT_TIMEOUT": Setting("connect_timeout", parse_seconds),
    "WEB_CONCURRENCY": Setting("workers", whole_in(1, MAX_WORKERS, "1 or more processes")),
    "WORKERS": Setting("workers", whole_in(1, MAX_WORKERS, "1 or more processes")),
    "APPLICATION_NAME": Setting("application_name", parse_application_name),
    "PGAPPNAME": Setting("application_name", parse_application_name),
}
# application_name=... inside a DSN (DATABASE_URL and the like); the rest of the DSN, password
# included, is never kept.
_DSN_APPLICATION_NAME = re.compile(r"[?&\s]application_name=([^&\s'\"]+)")
MAX_APPLICATION_NAME = 63  # PostgreSQL's NAMEDATALEN - 1


def setting_for(key: str) -> Setting | None:
    """The setting a key names, ignoring case and a DATABASE_/DB_/SQLALCHEMY_ prefix."""
    upper = key.strip().upper()
    if upper in SETTINGS:
        return SETTINGS[upper]
    for prefix in KEY_PREFIXES:
        if upper.startswith(prefix) and upper[len(prefix) :] in SETTINGS:
            return SETTINGS[upper[len(prefix) :]]
    return None


def split_assignment(line: str) -> tuple[str, str] | None:
    """(key, value) of one env-file line, or None for blanks, comments and non-assignments."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None
    if stripped.startswith("export "):
        stripped = stripped[len("export ") :].lstrip()
    key, equals, value = stripped.partition("=")
    key = key.strip()
    if not equals or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", key):
        return None
    return key, _unquote(value.strip())


def _unquote(value: str) -> str:
    if value[:1] in ("'", '"'):
        quote = value[0]
        closing = value.find(quote, 1)
        return value[1:closing] if closing > 0 else value[1:]
    comment = re.search(r"\s#", value)
    return value[: comment.start()].strip() if comment else value


def read_config(paths: Sequence[str], workers: int | None) -> PoolConfig:
    """Pool settings from env files (later files win) and --workers; problems, never raises."""
    config = PoolConfig()
    problems: list[str] = []
    files: list[str] = []
    for path in paths:
        try:
            data = read_input(path, MAX_CONFIG_BYTES)
        except OSError as exc:
            problems.append(f"{path}: cannot read: {exc.strerror or exc}")
            continue
        files.append(path)
        name = Path(path).name
        text = data.decode("utf-8", "replace")
        for number, line in enumerate(text.splitlines(), start=1):
            config = _apply_line(config, line, f"{name}:{number}", problems)
    if workers is not None:
        config = replace(config, workers=workers)
    return replace(config, files=tuple(files), problems=tuple(problems))


def _apply_line(config: PoolConfig, line: str, where: str, problems: list[str]) -> PoolConfig:
    assignment = split_assignment(line)
    if assignment is None:
        return config
    key, value = assignment
    setting = setting_for(key)
    if setting is None:
        named = _DSN_APPLICATION_NAME.search(f" {value}")
        if named is not None and config.application_name is None:
            with contextlib.suppress(BadValue):
                name = parse_application_name(unquote(named.group(1)))
                return replace(config, application_name=name)
        return config  # unknown keys (DATABASE_URL and its password among them) stay unread
    try:
        parsed = setting.parse(value)
    except (BadValue, BadDuration) as exc:
        problems.append(f"{where}: {key}={_shown(value)} {exc}")
        return config
    return replace(config, **{setting.field: parsed})  # type: ignore[arg-type]


def _shown(value: str) -> str:
    shown = redact(value)
    return repr(shown if len(shown) <= 40 else shown[:39] + "…")
