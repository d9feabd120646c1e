"""candidate_lines finds exactly the lines a naive line-by-line search finds, across windows."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from pooldoctor.collect.logs import search
from pooldoctor.collect.logs.search import WINDOW_BYTES, candidate_lines

KEYS = (b"timeout", b"closed", b"dlock det")
HYPERSCAN = search.MULTI_LITERAL  # the wheel is installed here


def _naive(buffer: bytes, start: int, end: int) -> dict[int, int]:
    found: dict[int, int] = {}
    position = start
    for line in buffer[start:end].split(b"\n"):
        mask = sum(1 << bit for bit, key in enumerate(KEYS) if key in line)
        if mask:
            found[position] = mask
        position += len(line) + 1
    return found


def _log(seed: int) -> bytes:
    rng = random.Random(seed)
    words = [b"ok", b"GET /x", b"timeout", b"closed", b"deadlock detected", b"x" * 900]
    lines = [b" ".join(rng.choice(words) for _ in range(rng.randint(0, 6))) for _ in range(4000)]
    lines.insert(1500, b"timeout " + b"y" * (WINDOW_BYTES + 7) + b" closed")  # longer than a window
    return b"\n".join(lines)


@pytest.fixture(params=["hyperscan", "strstr"])
def matcher(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs with the one-pass matcher (when installed) and with the strstr passes."""
    if request.param == "hyperscan" and not HYPERSCAN:
        pytest.skip("the hyperscan wheel is not installed here")
    monkeypatch.setattr(search, "MULTI_LITERAL", request.param == "hyperscan")
    return str(request.param)


def test_matches_a_naive_search_over_many_windows(matcher: str) -> None:
    for seed in range(3):
        buffer = _log(seed)
        assert len(buffer) > 4 * WINDOW_BYTES
        start = buffer.find(b"\n", 1000) + 1
        end = buffer.rfind(b"\n", 0, len(buffer) - 5000)
        assert candidate_lines(buffer, start, end, KEYS) == _naive(buffer, start, end)


def test_keys_on_window_edges_and_in_threads(matcher: str) -> None:
    line = b"a closed b timeout c\n"
    buffer = line * (3 * WINDOW_BYTES // len(line) + 3)
    expected = _naive(buffer, 0, len(buffer))
    assert candidate_lines(buffer, 0, len(buffer), KEYS) == expected
    with ThreadPoolExecutor(2) as pool:
        assert candidate_lines(buffer, 0, len(buffer), KEYS, pool, 2) == expected


def test_without_hyperscan_the_strstr_passes_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = _log(9)
    expected = _naive(buffer, 0, len(buffer))
    monkeypatch.setattr(search, "hyperscan", None)  # as on a platform without the wheel
    monkeypatch.setattr(search, "MULTI_LITERAL", False)
    assert candidate_lines(buffer, 0, len(buffer), KEYS) == expected


def test_a_hyperscan_failure_falls_back_to_strstr(monkeypatch: pytest.MonkeyPatch) -> None:
    hyperscan = pytest.importorskip("hyperscan")

    class Broken:
        def scan(self, *_args: object, **_kwargs: object) -> None:
            raise hyperscan.ScratchInUseError("scratch in use")

    buffer = _log(10)
    monkeypatch.setattr(search, "MULTI_LITERAL", True)
    monkeypatch.setitem(search._DATABASES, (KEYS, False), Broken())
    assert candidate_lines(buffer, 0, len(buffer), KEYS) == _naive(buffer, 0, len(buffer))


def test_caseless_keys_match_in_any_ascii_case(matcher: str) -> None:
    buffer = b"a TimeOut\nnothing\nDLOCK DET and CLOSED\nt\xc4\xb0meout\n"
    assert candidate_lines(buffer, 0, len(buffer), KEYS, caseless=True) == {0: 1, 18: 6}
