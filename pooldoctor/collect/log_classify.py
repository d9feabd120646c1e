"""Classify one candidate log line, and make lines safe to quote (redacted, truncated)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pooldoctor.collect.log_patterns import RULES, SQLSTATE_EVENTS, SQLSTATE_PATTERN
from pooldoctor.evidence import LogEvent
from pooldoctor.redact import redact
from pooldoctor.sanitize import strip_controls

__all__ = ["Check", "checks_for", "classify", "quote_line", "redact"]

EXAMPLE_MAX_CHARS = 300  # enough for a message and its context; a report is not a log viewer
USER_REQUEST = b"due to user request"  # 57014 also means a cancel the app asked for

Check = tuple[bytes, LogEvent, "re.Pattern[bytes] | None"]


def checks_for(rule_indexes: Sequence[int]) -> tuple[Check, ...]:
    """The (literal, event, confirm) checks of some rules, most specific first."""
    return tuple(
        (literal, RULES[index].event, RULES[index].confirm)
        for index in sorted(rule_indexes)
        for literal in RULES[index].literals
    )


ALL_CHECKS = checks_for(range(len(RULES)))


def classify(line: bytes, checks: Sequence[Check] = ALL_CHECKS) -> LogEvent | None:
    """The first (most specific) check matching the line, else its SQLSTATE, else None."""
    for literal, event, confirm in checks:
        if literal in line and (confirm is None or confirm.search(line)):
            return event
    match = SQLSTATE_PATTERN.search(line)
    if match is None:
        return None
    code = match.group(1) or match.group(2)
    found = SQLSTATE_EVENTS.get(code)
    if found is LogEvent.STATEMENT_TIMEOUT and USER_REQUEST in line:
        return None
    return found


def quote_line(line: bytes, limit: int = EXAMPLE_MAX_CHARS) -> str:
    """A log line as it may appear in evidence: decoded, redacted, truncated."""
    text = strip_controls(line.decode("utf-8", "replace").rstrip("\r\n"))
    text = redact(text[: limit * 2])
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text
