"""Fuzz check's fast argument path against typer: whatever it accepts, typer passes the same."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pooldoctor.commands.check import check_command
from pooldoctor.commands.lightargs import parse_plain
from tests.typer_calls import typer_arguments

FLAGS = [
    "--pool-status",
    "--dsn",
    "--pgbouncer",
    "--prometheus",
    "--log",
    "--config",
    "--since",
    "--until",
    "--log-tz",
    "--samples",
    "--interval",
    "--timeout",
    "-t",
    "--warning",
    "-w",
    "--critical",
    "-c",
    "--waiting-warning",
    "--waiting-critical",
    "--idle-in-transaction-warning",
    "--idle-in-transaction-critical",
    "--workers",
    "--help",
    "-h",
    "--",
    "-",
]
VALUES = [
    "0",
    "5",
    "80",
    "95.5",
    ".5",
    "5.",
    "007",
    "100",
    "101",
    "1000",
    "1001",
    "-5",
    "-0",
    "1e1",
    "inf",
    "nan",
    " 5",
    "5 ",
    "\u0663",
    "0x10",
    "1_000",
    "",
    "x",
    "30m",
    "UTC",
    "http://a:8000/pool-status",
    "a=b",
    "--",
]
# Range edges of check's options (samples 1-1000, percent 0-100, timeout 0.1-300, ...).
EDGES = ["-1", "-0", "0", "0.0", "1", "0.1", "0.09", "100", "100.0", "100.01", "300", "300.1"]
NUMBERS = st.one_of(
    st.sampled_from([*EDGES, "1000", "1001", "3600", "3600.5"]),
    st.integers(-10, 1100).map(str),
    st.decimals(-1, 400, places=2, allow_nan=False).map(str),
)
VALUE = st.one_of(st.sampled_from(VALUES), NUMBERS)
# Mostly well-formed option/value pairs (so many calls take the fast path), with noise mixed in.
PAIR = st.builds(
    lambda flag, value, joined: [f"{flag}={value}"] if joined else [flag, value],
    st.sampled_from(FLAGS),
    VALUE,
    st.booleans(),
)
NOISE = st.one_of(
    st.sampled_from(FLAGS).map(lambda flag: [flag]),
    VALUE.map(lambda value: [value]),
    st.builds(lambda flag, value: [flag + value], st.sampled_from(["-w", "-t", "-c"]), VALUE),
)
TEXT_FLAGS = FLAGS[:9]
NUMBER_FLAGS = FLAGS[9:22]
TEXT = st.sampled_from(["x", "30m", "UTC", "http://a:8000/pool-status", "a=b", "app.log"])
TYPED = st.builds(
    lambda pair, joined: [f"{pair[0]}={pair[1]}"] if joined and pair[0][1] == "-" else list(pair),
    st.one_of(
        st.tuples(st.sampled_from(TEXT_FLAGS), TEXT),
        st.tuples(st.sampled_from(NUMBER_FLAGS), NUMBERS),
    ),
    st.booleans(),
)
# Half the calls are typed pairs only (many take the fast path), half mix in noise.
ARGV = st.one_of(
    st.lists(TYPED, max_size=6),
    st.lists(st.one_of(TYPED, PAIR, NOISE), max_size=6),
).map(lambda parts: [token for part in parts for token in part])


@settings(max_examples=400, deadline=None, derandomize=True)
@given(ARGV)
def test_what_the_fast_path_accepts_typer_passes_identically(argv: list[str]) -> None:
    fast = parse_plain(check_command, argv)
    if fast is not None:
        assert fast == typer_arguments(argv)
