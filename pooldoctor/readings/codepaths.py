"""Name the code path behind stuck work: app-log exceptions at the moment a transaction began."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from pooldoctor.evidence import CodeFlag, Evidence, LoggedException

# An exception explains a moment when it was logged this close after it (the request that
# began the transaction failed within its own duration), allowing clock skew before it.
MIN_SLACK_SECONDS = 0.25
MAX_SLACK_SECONDS = 5.0
SLACK_P99_MULTIPLE = 2.0
SKEW_SECONDS = 0.05
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
    slack: float,
) -> list[CodePath]:
    """Exceptions first; moments no exception explains, by the 5xx request that began then."""
    paths = explain(moments, logged, slack)
    explained = {key for path in paths for key in path.keys}
    rest = [(key, moment) for key, moment in moments if key not in explained]
    if rest and failed:
        by_request = explain(rest, failed, slack)
        paths += [replace(p, of=len(moments)) for p in by_request]
    return sorted(paths, key=lambda p: -p.explains)


def is_pool_timeout(exception: LoggedException) -> bool:
    text = f"{exception.type} {exception.message}".lower()
    return any(marker in text for marker in POOL_TIMEOUT_MARKERS)


def correlation_slack(typical_seconds: float | None) -> float:
    if typical_seconds is None:
        return MAX_SLACK_SECONDS
    return min(MAX_SLACK_SECONDS, max(MIN_SLACK_SECONDS, SLACK_P99_MULTIPLE * typical_seconds))


def explain(
    moments: Sequence[tuple[int, datetime]],
    logged: Sequence[LoggedException],
    slack: float,
) -> list[CodePath]:
    """Pair each moment with the exception logged closest to it (within `slack` after it, or
    SKEW_SECONDS before), one exception per moment; then group by code path."""
    pairs = sorted(
        (abs(lag), lag, index, position)
        for index, (_key, moment) in enumerate(moments)
        for position, e in enumerate(logged)
        if not is_pool_timeout(e)
        and -SKEW_SECONDS <= (lag := (e.at - moment).total_seconds()) <= slack
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
