"""SQL text for the PostgreSQL collector: its queries loaded by name, and literal redaction."""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files

from psycopg import sql

PLACEHOLDER = "?"
ELLIPSIS = "…"

# One alternative per SQL token kind; what matches no alternative (operators, spaces) is kept.
# Prefixed strings come before words so that E'..', B'..', X'..', N'..' and U&'..' are strings.
_TOKEN = re.compile(
    r"""
    (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<identifier>"(?:[^"]|"")*"?)
  | (?P<dollar>\$(?P<tag>(?:[^\W\d]\w*)?)\$.*?(?:\$(?P=tag)\$|\Z))
  | (?P<escaped>[eE]'(?:[^'\\]|\\.|'')*'?)
  | (?P<string>(?:[bBxXnN]|[uU]&)?'(?:[^']|'')*'?)
  | (?P<param>\$\d+)
  | (?P<word>[^\W\d][\w$]*)
  | (?P<number>(?:0[xXoObB][0-9a-fA-F_]+|(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?))
    """,
    re.DOTALL | re.VERBOSE,
)
_LITERAL_KINDS = frozenset({"dollar", "escaped", "string", "number"})


@cache
def load_query(name: str) -> sql.SQL:
    """The collector query stored as `<name>.sql` next to this module."""
    text = files(__name__).joinpath(f"{name}.sql").read_text(encoding="utf-8")
    return sql.SQL(text)  # package data shipped with pooldoctor, never user input


@cache
def load_fragment(name: str) -> sql.SQL:
    """An SQL expression stored as `<name>.sql`, without its comment lines, for composing."""
    text = files(__name__).joinpath(f"{name}.sql").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return sql.SQL("\n".join(lines).strip())  # package data shipped with pooldoctor


def redact_literals(query: str) -> str:
    """Replace string, dollar-quoted and numeric literals with `?`; keep identifiers, `$n`."""

    def replace(match: re.Match[str]) -> str:
        return PLACEHOLDER if match.lastgroup in _LITERAL_KINDS else match[0]

    return _TOKEN.sub(replace, query)


def shorten_query(query: str, limit: int, redact: bool = True) -> str:
    """Redact (optionally), collapse whitespace and cut to `limit` characters."""
    text = " ".join((redact_literals(query) if redact else query).split())
    if len(text) > limit:
        return text[: limit - len(ELLIPSIS)] + ELLIPSIS
    return text
