"""Typed JSON round trip for frozen dataclasses (datetimes as RFC 3339 UTC with Z)."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import types
import typing
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar

from pooldoctor.redact import redact
from pooldoctor.sanitize import strip_controls

T = TypeVar("T")

MAX_JSON_DEPTH = 64  # evidence nests about 8 deep; deeper input is hostile or broken
# Any number read from outside beyond this (in magnitude) is nonsense for pool evidence
# (counts, pids, seconds, bytes) and would overflow datetime and int arithmetic downstream.
MAX_JSON_NUMBER = 1e15
_JSON_NESTING = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class JsonLimitError(ValueError):
    """JSON that is well-formed but beyond what pooldoctor accepts (depth, non-finite numbers)."""


def json_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """The nesting depth of JSON text, counting no further than limit + 1."""
    depth = deepest = 0
    for match in _JSON_NESTING.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if depth > limit:
                return deepest
        elif token in "]}":
            depth -= 1
    return deepest


def _no_constant(name: str) -> Any:
    raise JsonLimitError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number) or abs(number) > MAX_JSON_NUMBER:
        raise JsonLimitError(f"number {text[:40]} is out of range")
    return number


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 16 or abs(number := int(text)) > MAX_JSON_NUMBER:
        raise JsonLimitError(f"number {text[:40]} is out of range")
    return number


def loads_bounded(text: str, max_depth: int = MAX_JSON_DEPTH, *, numbers: bool = True) -> Any:
    """json.loads refusing nesting deeper than max_depth and, with `numbers`, NaN/Infinity and
    huge numbers (without it the caller range-checks each value and names it)."""
    if json_depth(text, max_depth) > max_depth:
        raise JsonLimitError(f"nested deeper than {max_depth} levels")
    if not numbers:
        return json.loads(text)
    return json.loads(
        text, parse_constant=_no_constant, parse_float=_finite_float, parse_int=_bounded_int
    )


def as_utc(moment: datetime) -> datetime:
    """The same instant in UTC; naive datetimes are taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def format_utc(moment: datetime) -> str:
    """Render a datetime as RFC 3339 in UTC with a trailing Z."""
    return as_utc(moment).isoformat().replace("+00:00", "Z")


def parse_utc(text: str) -> datetime:
    """Parse an RFC 3339 timestamp into an aware UTC datetime."""
    return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def to_plain(value: Any) -> Any:
    """Turn dataclasses, enums, datetimes and tuples into JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return format_utc(value)
    if isinstance(value, str):
        return redact(strip_controls(value))
    if isinstance(value, tuple | list):
        return [to_plain(item) for item in value]
    if isinstance(value, dict):
        return {strip_controls(str(key)): to_plain(item) for key, item in value.items()}
    return value


def dumps_dataclass(value: Any) -> str:
    """Serialise a dataclass instance to indented JSON."""
    return json.dumps(to_plain(value), indent=2, sort_keys=False) + "\n"


def loads_dataclass(cls: type[T], text: str) -> T:
    """Parse JSON text into an instance of the dataclass `cls`."""
    value: T = from_plain(cls, loads_bounded(text))
    return value


@functools.cache
def _field_hints(cls: type) -> tuple[tuple[str, Any], ...]:
    """(field name, resolved type) of a dataclass: resolving hints is costly, a fleet's evidence
    has thousands of samples of the same few classes."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


def from_plain(cls: Any, data: Any) -> Any:
    """Rebuild a typed value from JSON-ready data, following the type hints."""
    origin = typing.get_origin(cls)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(cls) if arg is not type(None)]
        if data is None:
            return None
        return from_plain(options[0], data)
    if origin is tuple:
        (item_type, *_rest) = typing.get_args(cls)
        if not isinstance(data, list):
            raise TypeError(f"expected a list, got {type(data).__name__}")
        return tuple(from_plain(item_type, item) for item in data)
    if origin is dict:
        key_type, value_type = typing.get_args(cls)
        if not isinstance(data, dict):
            raise TypeError(f"expected an object, got {type(data).__name__}")
        return {from_plain(key_type, k): from_plain(value_type, v) for k, v in data.items()}
    if origin is list:
        (item_type,) = typing.get_args(cls)
        return [from_plain(item_type, item) for item in data]
    if isinstance(cls, type) and dataclasses.is_dataclass(cls):
        if not isinstance(data, dict):
            raise TypeError(f"expected an object for {cls.__name__}, got {type(data).__name__}")
        kwargs = {
            name: from_plain(hint, data[name]) for name, hint in _field_hints(cls) if name in data
        }
        return cls(**kwargs)
    if cls is datetime:
        if not isinstance(data, str):
            raise TypeError(f"expected a timestamp string, got {data!r}")
        return parse_utc(data)
    if isinstance(cls, type) and issubclass(cls, Enum):
        return cls(data)
    if cls is float and isinstance(data, int | float):
        return float(data)
    if cls is typing.Any:
        return data
    if isinstance(cls, type) and not isinstance(data, cls):
        raise TypeError(f"expected {cls.__name__}, got {data!r}")
    return data
