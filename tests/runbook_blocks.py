"""Fenced code blocks of a runbook's markdown body, with the section each sits in."""

from __future__ import annotations

from collections.abc import Iterator


def code_blocks(body: str) -> Iterator[tuple[str, str, str]]:
    """(section, language, code) for each fenced block, fences possibly indented inside lists."""
    section, language, fence = "", "", None
    lines: list[str] = []
    for line in body.splitlines():
        stripped = line.strip()
        if fence is None and line.startswith("## "):
            section = line[3:].strip()
        elif fence is None and stripped.startswith("```"):
            fence, language, lines = "```", stripped[3:].strip(), []
        elif fence is not None and stripped == fence:
            yield section, language, "\n".join(lines)
            fence = None
        elif fence is not None:
            lines.append(line)
