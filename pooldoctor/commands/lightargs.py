"""A fast path for a command whose options are all plain: the arguments typer would pass, without
building typer's validators (which import pydantic: most of a monitoring check's start-up).

Anything this does not fully understand (help, an unknown or repeated option, a value that is not
a plain number, one out of range) gives None, and typer parses the call instead, with its own
errors and help. tests/test_startup.py checks both paths give the same arguments.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from typer.models import OptionInfo

_INT = re.compile(r"[0-9]{1,18}")
_FLOAT = re.compile(r"[0-9]{1,18}(?:\.[0-9]{1,18})?|\.[0-9]{1,18}")
# Typer features this parser does not replicate: a parameter using any of them goes to typer.
_TYPER_ONLY = (
    "callback",
    "envvar",
    "parser",
    "default_factory",
    "is_eager",
    "clamp",
    "count",
    "prompt",
    "click_type",
    "is_flag",
    "flag_value",
)


@dataclass(frozen=True)
class _Option:
    """One option: its parameter, value type, whether it repeats, its range and default."""

    name: str
    kind: type
    multiple: bool
    low: float | None
    high: float | None
    default: Any

    def convert(self, text: str) -> Any:
        """The value typer would pass for `text`, or None where typer must decide."""
        if self.kind is str:
            return text if text and not text.startswith("-") else None
        pattern = _INT if self.kind is int else _FLOAT
        if not pattern.fullmatch(text):
            return None
        value = self.kind(text)
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            return None
        return value


def _plain_type(annotation: Any) -> tuple[type, bool] | None:
    """(value type, repeats) for str/int/float, list[...] of them and their optional forms."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) != 1:
            return None
        annotation = members[0]
    multiple = typing.get_origin(annotation) is list
    if multiple:
        (annotation,) = typing.get_args(annotation)
    if annotation not in (str, int, float):
        return None
    return annotation, multiple


@cache
def _options(command: Callable[..., Any]) -> dict[str, _Option] | None:
    """Each option spelling of `command`, or None when a parameter is more than plain."""
    hints = typing.get_type_hints(command, include_extras=True)
    by_flag: dict[str, _Option] = {}
    for name, parameter in inspect.signature(command).parameters.items():
        hint = hints.get(name)
        if typing.get_origin(hint) is not typing.Annotated:
            return None
        base, *extras = typing.get_args(hint)
        infos = [extra for extra in extras if isinstance(extra, OptionInfo)]
        plain = _plain_type(base)
        if len(infos) != 1 or plain is None or parameter.default is inspect.Parameter.empty:
            return None
        info = infos[0]
        if any(getattr(info, feature, None) for feature in _TYPER_ONLY):
            return None
        if not getattr(info, "expose_value", True):
            return None
        first = [info.default] if isinstance(info.default, str) else []
        spellings = [*first, *(info.param_decls or ())]
        if not spellings or not all(s.startswith("-") and "/" not in s for s in spellings):
            return None
        kind, multiple = plain
        option = _Option(name, kind, multiple, info.min, info.max, parameter.default)
        by_flag.update(dict.fromkeys(spellings, option))
    return by_flag


def parse_plain(command: Callable[..., Any], argv: Sequence[str]) -> dict[str, Any] | None:
    """The keyword arguments typer would call `command` with, or None to let typer parse."""
    by_flag = _options(command)
    if by_flag is None:
        return None
    values: dict[str, Any] = {option.name: option.default for option in by_flag.values()}
    given: set[str] = set()
    index = 0
    while index < len(argv):
        flag, equals, text = argv[index].partition("=")
        option = by_flag.get(flag)
        if option is None or (equals and not flag.startswith("--")):
            return None
        if not equals:
            if index + 1 >= len(argv):
                return None
            text = argv[index + 1]
        index += 1 if equals else 2
        value = option.convert(text)
        if value is None:
            return None
        if option.multiple:
            values[option.name] = [*(values[option.name] or ()), value]
        elif option.name in given:
            return None
        else:
            values[option.name] = value
        given.add(option.name)
    return values
