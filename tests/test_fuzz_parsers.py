"""Property tests over every parser of outside input: whatever arrives, each parser returns a
bounded value or raises its own documented error, never anything else. Derandomized with a
fixed example budget, so `make test` is reproducible and its cost is fixed."""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import string
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pooldoctor.collect.config import read_config, split_assignment
from pooldoctor.collect.dsn import InvalidDsnError, parse_dsn
from pooldoctor.collect.logs import collect_logs
from pooldoctor.collect.logs.timestamps import TimestampReader
from pooldoctor.collect.options import BadOption, parse_time_arg
from pooldoctor.collect.pool_payloads import PayloadError, parse_pool_payload
from pooldoctor.diagnosis import diagnose
from pooldoctor.evidence import MAX_COUNT, MAX_SECONDS, EvidenceFormatError, evidence_from_json
from pooldoctor.redact import redact, redact_dsn
from pooldoctor.report.render import md_cell, md_text

BUDGET = settings(
    derandomize=True,
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
AT = datetime(2026, 11, 21, 9, 45, tzinfo=UTC)
EVIDENCE_FIXTURE = Path(__file__).parent / "data" / "checks" / "connection-leak.failing.json"

numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["12", "-1", "1e308", "NaN", "", "x"]),
    st.none(),
    st.booleans(),
)
json_values = st.recursive(
    st.one_of(numbers, st.text(max_size=20)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
pool_fields = st.sampled_from(
    ["size", "checked_out", "checked_in", "overflow", "max_overflow", "timeout", "waiting",
     "holders", "counters", "pool_size", "pool_available", "requests_waiting", "pool_max",
     "engines"]
)  # fmt: skip


def _check_sample(body: str, content_type: str | None) -> None:
    try:
        sample = parse_pool_payload(body, content_type, AT)
    except PayloadError:
        return
    for name in ("size", "checked_out", "checked_in", "waiting"):
        value = getattr(sample, name)
        assert value is None or 0 <= value <= MAX_COUNT, (name, value)
    assert sample.timeout is None or 0 <= sample.timeout <= MAX_SECONDS
    for holder in sample.holders:
        assert 0 <= holder.age_seconds <= MAX_SECONDS
    assert all(math.isfinite(value) for value in sample.counters.values())


@BUDGET
@given(st.dictionaries(pool_fields, json_values, max_size=8))
def test_json_pool_payloads_parse_or_raise_payload_error(document: dict[str, object]) -> None:
    _check_sample(json.dumps(document), "application/json")


prom_names = st.sampled_from(
    ["db_pool_size", "db_pool_checked_out", "db_pool_checkedin", "db_pool_overflow",
     "db_pool_timeout_seconds", "sqlalchemy_pool_idle", "app_pool_checkouts_total", "other"]
)  # fmt: skip
prom_values = st.sampled_from(["5", "-3", "1e308", "NaN", "+Inf", "-Inf", "0.5", "x", "1e400"])


@BUDGET
@given(st.lists(st.tuples(prom_names, st.text(max_size=8), prom_values), max_size=8))
def test_prometheus_pool_payloads_parse_or_raise_payload_error(
    lines: list[tuple[str, str, str]],
) -> None:
    body = "\n".join(
        f'{name}{{pool="{label}"}} {value}' if label else f"{name} {value}"
        for name, label, value in lines
    )
    _check_sample(body, "text/plain")


@BUDGET
@given(st.text(max_size=300), st.sampled_from([None, "text/plain", "application/json"]))
def test_any_text_payload_parses_or_raises_payload_error(
    body: str, content_type: str | None
) -> None:
    status = (
        "Pool size: {} Connections in pool: {} Current Overflow: {} "
        "Current Checked out connections: {}"
    )
    _check_sample(body, content_type)
    _check_sample(status.format(*(body[:12] or "1" for _ in range(4))), content_type)


timestamp_prefixes = st.sampled_from(
    ["2026-11-21 09:30:00", "2026-11-21T09:30:00.123", "[2026-11-21 09:30:00 ", "{\"ts\": ",
     "Nov 21 09:30:00 ", "1.2.3.4 - - [21/Nov/2026:09:30:00 ", "9999-12-31 23:59:59",
     "0001-01-01 00:00:00"]
)  # fmt: skip
offsets = st.sampled_from(
    ["", "Z", "+00", "+24", "-99", "+23:59", "+3000]", " +0000]", " CET", " CST", "+14:00"]
)


@BUDGET
@given(timestamp_prefixes, offsets, st.binary(max_size=40))
def test_timestamp_reader_returns_utc_or_none(prefix: str, offset: str, rest: bytes) -> None:
    reader = TimestampReader(log_tz=UTC, reference=AT)
    stamp = reader.read(prefix.encode() + offset.encode() + rest)
    if stamp is not None:
        assert stamp.moment.tzinfo is not None
        assert stamp.moment.utcoffset() == timedelta(0)


@BUDGET
@given(st.lists(st.tuples(timestamp_prefixes, offsets, st.binary(max_size=60)), max_size=12))
def test_a_log_of_any_lines_is_read_line_by_line(lines: list[tuple[str, str, bytes]]) -> None:
    data = b"\n".join(p.encode() + o.encode() + r for p, o, r in lines)
    (log,) = collect_logs(["-"], log_tz=UTC, since=None, until=None, stdin=io.BytesIO(data))
    assert not any("could not scan" in problem for problem in log.problems), log.problems
    assert log.lines == (data.count(b"\n") + (not data.endswith(b"\n")) if data else 0)


config_keys = st.sampled_from(
    ["POOL_SIZE", "DB_MAX_OVERFLOW", "POOL_TIMEOUT", "POOL_RECYCLE", "POOL_PRE_PING",
     "WORKERS", "WEB_CONCURRENCY", "STATEMENT_TIMEOUT", "export SQLALCHEMY_POOL_SIZE",
     "DATABASE_URL"]
)  # fmt: skip
config_values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["-1", "-5", "0", "1e308", "9" * 50, "30s", "5min", "1.5h", "'10'", "yes"]),
)


@BUDGET
@given(pairs=st.lists(st.tuples(config_keys, config_values), max_size=10))
def test_config_files_read_into_bounded_settings(
    pairs: list[tuple[str, str]], tmp_path_factory: object
) -> None:
    text = "\n".join(f"{key}={value}" for key, value in pairs)
    for line in text.splitlines():
        split_assignment(line)
    directory = tmp_path_factory.mktemp("config")  # type: ignore[attr-defined]
    path = directory / "app.env"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    config = read_config([str(path)], None)
    assert config.pool_size is None or 0 <= config.pool_size <= MAX_COUNT
    assert config.max_overflow is None or -1 <= config.max_overflow <= MAX_COUNT
    assert config.workers is None or config.workers >= 1
    for seconds in (config.pool_timeout, config.pool_recycle, config.statement_timeout):
        assert seconds is None or 0 <= seconds <= MAX_SECONDS


passwords = st.text(
    alphabet=string.ascii_letters + string.digits + "!#$%&()*+,-./:;<=>?@[]^_{|}~ '\"\\",
    min_size=6,
    max_size=20,
).filter(lambda p: p.strip() == p and len(set(p)) > 3)
dsn_shapes = st.sampled_from(
    ["postgresql://app:{pw}@db:5432/app", "postgres://app:{pw}@db/app?sslmode=require",
     "postgresql+psycopg://app:{pw}@db/app", "postgresql:/app:{pw}@db/app",
     "postgresql//app:{pw}@db/app", "app:{pw}@db/app", "host=db user=app password={pw}",
     "host=db password='{pw}' dbname=app", "host=db password={pw} dbname=app"]
)  # fmt: skip


@BUDGET
@given(dsn_shapes, passwords)
def test_dsns_parse_or_fail_without_their_password(shape: str, password: str) -> None:
    dsn = shape.format(pw=password)
    secret_word = max(password.split(), key=len)
    if len(secret_word) < 6:
        return
    assert secret_word not in redact_dsn(dsn)
    try:
        parse_dsn(dsn)
    except InvalidDsnError as exc:
        assert secret_word not in str(exc)


secret_values = st.text(alphabet=string.ascii_letters + string.digits, min_size=8, max_size=24)
secret_shapes = st.sampled_from(
    ["Authorization: Bearer {s}", "authorization: basic {s}", "GET /x?access_token={s}&a=1",
     "auth_token={s}", "client_secret={s} next", "Cookie: session={s}; theme=dark",
     '{{"db_password": "{s}"}}', "password: {s}", "https://u:{s}@host/path",
     "api_key={s}", "x-api-key: {s}"]
)  # fmt: skip


@BUDGET
@given(secret_shapes, secret_values, st.text(max_size=20))
def test_redact_hides_every_secret_class(shape: str, secret: str, noise: str) -> None:
    text = noise + " " + shape.format(s=secret) + " " + noise
    assert secret not in redact(text).replace(noise, "")


secret_keys = st.sampled_from(["password", "sslpassword", "db_password", "auth_token", "secret"])
prose = st.sampled_from(["for", "user", "bob", "failed", "was", "rejected", "at", "login"])
pairs = st.lists(
    st.tuples(
        st.sampled_from(["host", "user", "dbname", "port"]),
        st.sampled_from(["db", "app", "5432", "db.internal"]),
    ),
    max_size=2,
)


@BUDGET
@given(secret_keys, secret_values, secret_values, pairs, pairs)
def test_a_spaced_password_in_a_key_value_list_is_hidden_whole(
    key: str, first: str, second: str, before: list[tuple[str, str]], after: list[tuple[str, str]]
) -> None:
    if not before and not after:
        after = [("dbname", "app")]
    listed = " ".join(f"{k}={v}" for k, v in before)
    trailing = " ".join(f"{k}={v}" for k, v in after)
    text = f"connect: {listed} {key}={first} {second} {trailing}".replace("  ", " ")
    redacted = redact(text)
    assert first not in redacted and second not in redacted, redacted
    assert all(f"{k}={v}" in redacted for k, v in before + after)


@BUDGET
@given(secret_keys, secret_values, st.lists(prose, min_size=1, max_size=4))
def test_words_after_an_unquoted_secret_in_prose_stay_visible(
    key: str, secret: str, words: list[str]
) -> None:
    tail = " ".join(words)
    redacted = redact(f"login failed: {key}={secret} {tail}")
    assert secret not in redacted
    assert redacted.endswith(f"=*** {tail}"), redacted


time_texts = st.one_of(
    st.text(max_size=30),
    st.builds(lambda n, u: f"{n}{u}", st.integers(0, 10**15), st.sampled_from("smhd")),
    st.sampled_from(["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "2026-11-21"]),
)


@BUDGET
@given(time_texts)
def test_time_arguments_parse_or_are_usage_errors(text: str) -> None:
    try:
        moment = parse_time_arg(text, AT, UTC)
    except BadOption:
        return
    assert moment.tzinfo is not None


def _mutations(document: object) -> list[tuple[list[object], object]]:
    """Paths to every number in a JSON document."""
    found: list[tuple[list[object], object]] = []

    def walk(node: object, path: list[object]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, [*path, key])
        elif isinstance(node, list):
            for index, value in enumerate(node[:3]):
                walk(value, [*path, index])
        elif isinstance(node, int | float) and not isinstance(node, bool):
            found.append((path, node))

    walk(document, [])
    return found


BASE_EVIDENCE = json.loads(EVIDENCE_FIXTURE.read_text(encoding="utf-8"))
NUMBER_PATHS = [path for path, _ in _mutations(BASE_EVIDENCE)]


@BUDGET
@given(
    st.lists(
        st.tuples(
            st.sampled_from(NUMBER_PATHS),
            st.one_of(
                st.integers(-(10**18), 10**18),
                st.floats(allow_nan=False, allow_infinity=False),
                st.sampled_from([0, -1, 1e11, 1e308, 2**63]),
            ),
        ),
        max_size=4,
    )
)
def test_evidence_with_any_numbers_loads_and_diagnoses_or_is_refused(
    edits: list[tuple[list[object], float]],
) -> None:
    document = json.loads(json.dumps(BASE_EVIDENCE))
    for path, value in edits:
        node = document
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    try:
        evidence = evidence_from_json(json.dumps(document))
    except EvidenceFormatError:
        return
    diagnose(evidence, strict=True)


@BUDGET
@given(st.text(max_size=200))
def test_any_evidence_text_loads_or_is_refused(text: str) -> None:
    with contextlib.suppress(EvidenceFormatError):
        evidence_from_json(text)


@BUDGET
@given(st.text(max_size=120))
def test_outside_text_in_markdown_is_inert(text: str) -> None:
    shown = md_text(text)
    assert "<" not in shown and ">" not in shown
    assert not re.search(r"(?<!\\)[*`\[\]~]", shown)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", shown)
    assert "\n" not in md_cell(text)
