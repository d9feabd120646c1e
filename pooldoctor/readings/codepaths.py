"""Name the code path behind stuck work: app-log exceptions at the moment a transaction began."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from pooldoctor.durations import format_duration
from pooldoctor.evidence import CodeFlag, Evidence, LoggedException

# An exception explains a moment when it was logged after it within the failing request's own
# duration (2x the app's p99, so a slow failure still counts; at least 0.25 s of logging and
# scheduling delay, at most 5 s so a busy log cannot explain everything), or slightly before it
# when the app's clock is behind the database's. Both sides widen by the clock offset measured
# between the capture host and the database and by the log's timestamp resolution.
MIN_SLACK_SECONDS = 0.25
MAX_SLACK_SECONDS = 5.0
SLACK_P99_MULTIPLE = 2.0
SKEW_SECONDS = 0.05  # floor for the "before" side: sampling jitter on one host
POOL_TIMEOUT_MARKERS = ("queuepool limit", "couldn't get a connection", "connection timed out")


@dataclass(frozen=True)
class CodePath:
    """An exception (type, message, innermost app frame) and the stuck moments it explains."""

    type: str
    message: str
    app_frame: str | None
    app_frames: tuple[str, ...]
    explains: int
    of: int
    keys: tuple[int, ...]  # pids (or indexes) of the moments it explains
    lag_ms: tuple[float, ...]

    def describe(self) -> str:
        where = f" at {self.app_frame}" if self.app_frame else ""
        message = f": {self.message}" if self.message else ""
        return f"{self.type}{message}{where} (explains {self.explains} of {self.of})"

    def as_evidence(self) -> dict[str, Any]:
        return {
            "exception": self.type,
            "message": self.message,
            "app_frame": self.app_frame,
            "app_frames": list(self.app_frames),
            "explains": self.explains,
            "of": self.of,
            "pids": list(self.keys),
            "lag_ms": list(self.lag_ms),
        }


def describe_flags(flags: Sequence[CodeFlag]) -> str:
    """'pooldoctor scan flags it too: line 239 PD101 ...'."""
    first = flags[0]
    more = f" (and {len(flags) - 1} more)" if len(flags) > 1 else ""
    return (
        f"pooldoctor scan flags this function too: line {first.line} {first.rule_id} "
        f"{first.message}{more}"
    )


def exceptions(evidence: Evidence) -> list[LoggedException]:
    return sorted(
        (e for log in evidence.logs if log.app is not None for e in log.app.exceptions),
        key=lambda e: e.at,
    )


def failed_requests(evidence: Evidence) -> list[LoggedException]:
    """5xx access-log requests as exception-like records at the moment each began."""
    return sorted(
        (
            LoggedException(
                at=request.at - timedelta(seconds=request.seconds),
                type=f"HTTP {request.status}",
                message=request.path,
            )
            for log in evidence.logs
            if log.app is not None
            for request in log.app.requests
            if request.status >= 500
        ),
        key=lambda e: e.at,
    )


def explain_with_requests(
    moments: Sequence[tuple[int, datetime]],
    logged: Sequence[LoggedException],
    failed: Sequence[LoggedException],
    window: MatchWindow,
) -> list[CodePath]:
    """Exceptions first; moments no exception explains, by the 5xx request that began then."""
    paths = explain(moments, logged, window)
    explained = {key for path in paths for key in path.keys}
    rest = [(key, moment) for key, moment in moments if key not in explained]
    if rest and failed:
        by_request = explain(rest, failed, window)
        paths += [replace(p, of=len(moments)) for p in by_request]
    return sorted(paths, key=lambda p: -p.explains)


def is_pool_timeout(exception: LoggedException) -> bool:
    text = f"{exception.type} {exception.message}".lower()
    return any(marker in text for marker in POOL_TIMEOUT_MARKERS)


@dataclass(frozen=True)
class MatchWindow:
    """How far before and after a stuck moment an exception may be logged to explain it."""

    before: float
    after: float
    clock_offset: float | None  # database clock minus the capture host's, median over rounds
    log_resolution: float  # 1.0 when the app log's timestamps carry no fraction of a second
    basis: str

    def describe(self) -> str:
        return (
            f"{format_duration(self.before)} before to {format_duration(self.after)} after "
            f"({self.basis})"
        )

    def as_evidence(self) -> dict[str, Any]:
        return {
            "before_seconds": round(self.before, 3),
            "after_seconds": round(self.after, 3),
            "clock_offset_seconds": None
            if self.clock_offset is None
            else round(self.clock_offset, 3),
            "log_resolution_seconds": self.log_resolution,
            "basis": self.basis,
        }


def clock_offset(evidence: Evidence) -> float | None:
    """Database clock minus the capture host's: pg_stat_activity samples carry the server's
    now(), app pool samples the capture host's time, and one round takes both a moment apart.
    None without both, or when the offset is not below half a round (it cannot be told from
    pairing with the wrong round)."""
    postgres = evidence.postgres
    local = sorted(s.at for instance in evidence.pools for s in instance.samples)
    if postgres is None or not postgres.samples or not local:
        return None
    gaps = sorted(
        (b.at - a.at).total_seconds()
        for instance in evidence.pools
        for a, b in itertools.pairwise(instance.samples)
    )
    half_round = gaps[len(gaps) // 2] / 2 if gaps and gaps[len(gaps) // 2] > 0 else None
    offsets = sorted(
        (
            sample.at - min(local, key=lambda at: abs((at - sample.at).total_seconds()))
        ).total_seconds()
        for sample in postgres.samples
    )
    offset = offsets[len(offsets) // 2]
    if half_round is not None and abs(offset) >= half_round:
        return None
    return offset


def log_resolution(logged: Sequence[LoggedException]) -> float:
    """1 s when no exception timestamp has a fraction of a second (a log without milliseconds)."""
    if len(logged) >= 3 and all(e.at.microsecond == 0 for e in logged):
        return 1.0
    return 0.001


def match_window(
    evidence: Evidence, logged: Sequence[LoggedException], typical_seconds: float | None
) -> MatchWindow:
    """The window derived from the app's p99 (or mean hold), the measured clock offset between
    the database and the capture host, and the log's timestamp resolution."""
    offset = clock_offset(evidence)
    resolution = log_resolution(logged)
    # A log truncated to the second reads up to 1 s early; an offset shifts either way.
    skew = abs(offset or 0.0) + resolution
    if typical_seconds is None:
        after = MAX_SLACK_SECONDS
        basis = f"no request or checkout times: at most {format_duration(MAX_SLACK_SECONDS)}"
    else:
        after = min(MAX_SLACK_SECONDS, max(MIN_SLACK_SECONDS, SLACK_P99_MULTIPLE * typical_seconds))
        basis = (
            f"2x the typical request {format_duration(typical_seconds)}, within "
            f"{format_duration(MIN_SLACK_SECONDS)}-{format_duration(MAX_SLACK_SECONDS)}"
        )
    if offset is not None:
        ahead = "ahead of" if offset >= 0 else "behind"
        basis += f"; database clock {format_duration(abs(offset))} {ahead} the capture host's"
    if resolution >= 1.0:
        basis += "; log timestamps to the second"
    return MatchWindow(max(SKEW_SECONDS, skew), after + skew, offset, resolution, basis)


def explain(
    moments: Sequence[tuple[int, datetime]],
    logged: Sequence[LoggedException],
    window: MatchWindow,
) -> list[CodePath]:
    """Pair each moment with the exception logged closest to it (within `window`), one
    exception per moment; then group by code path."""
    pairs = sorted(
        (abs(lag), lag, index, position)
        for index, (_key, moment) in enumerate(moments)
        for position, e in enumerate(logged)
        if not is_pool_timeout(e)
        and -window.before <= (lag := (e.at - moment).total_seconds()) <= window.after
    )
    matched: dict[int, tuple[float, LoggedException]] = {}
    used: set[int] = set()
    for _distance, lag, index, position in pairs:
        if index not in matched and position not in used:
            matched[index] = (lag, logged[position])
            used.add(position)
    groups: dict[tuple[str, str, str | None], list[tuple[int, float, LoggedException]]] = {}
    for index, (lag, match) in sorted(matched.items()):
        group = (match.type, match.message, match.app_frame)
        groups.setdefault(group, []).append((moments[index][0], lag * 1000, match))
    paths = [
        CodePath(
            type=exc_type,
            message=_generic(message, [m[2].message for m in items]),
            app_frame=frame,
            app_frames=items[0][2].app_frames,
            explains=len(items),
            of=len(moments),
            keys=tuple(m[0] for m in items),
            lag_ms=tuple(round(m[1], 1) for m in items),
        )
        for (exc_type, message, frame), items in _merge_messages(groups).items()
    ]
    return sorted(paths, key=lambda p: -p.explains)


def _merge_messages(
    groups: dict[tuple[str, str, str | None], list[tuple[int, float, LoggedException]]],
) -> dict[tuple[str, str, str | None], list[tuple[int, float, LoggedException]]]:
    """Exceptions of one type at one frame are one code path whatever their message says."""
    merged: dict[tuple[str, str, str | None], list[tuple[int, float, LoggedException]]] = {}
    first_message: dict[tuple[str, str | None], str] = {}
    for (exc_type, message, frame), items in groups.items():
        key = (exc_type, first_message.setdefault((exc_type, frame), message), frame)
        merged.setdefault(key, []).extend(items)
    return merged


def _generic(message: str, messages: list[str]) -> str:
    return (
        message if len(set(messages)) <= 1 else f"{message} (and {len(set(messages)) - 1} similar)"
    )
