"""`# pooldoctor: ignore` and `# pooldoctor: ignore[PD101, PD202]` comments on a finding's line."""

from __future__ import annotations

import re

IGNORE_COMMENT = re.compile(r"#\s*pooldoctor:\s*ignore(?:\[(?P<rules>[A-Za-z0-9,\s]*)\])?")


def is_suppressed(lines: list[str], first_line: int, last_line: int, rule_id: str) -> bool:
    """True when any line of the flagged node (1-based, inclusive) ignores `rule_id`."""
    for number in range(first_line, min(last_line, len(lines)) + 1):
        for match in IGNORE_COMMENT.finditer(lines[number - 1]):
            rules = match.group("rules")
            if rules is None:
                return True
            if rule_id in {part.strip().upper() for part in rules.split(",")}:
                return True
    return False
