"""Parse pool-status payloads (JSON, SQLAlchemy status(), psycopg_pool, Prometheus) into samples."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pooldoctor.evidence import MAX_COUNT, MAX_SECONDS, Holder, PoolSample
from pooldoctor.jsonio import MAX_JSON_NUMBER, JsonLimitError, loads_bounded
from pooldoctor.status_schema import ENGINES_KEY, NULLPOOL_CLASS

JSON = "json"
SQLALCHEMY_STATUS = "sqlalchemy-status"
SQLALCHEMY_NULLPOOL = "sqlalchemy-nullpool"
PSYCOPG_POOL = "psycopg-pool"
PROMETHEUS = "prometheus"

HTML_MESSAGE = "HTML page, not a pool-status payload: login page or wrong path?"
EXCERPT_CHARS = 60  # enough to recognise a payload in an error line, short enough for one line

COUNT_FIELDS = ("size", "checked_out", "checked_in", "overflow", "max_overflow", "waiting")
HOLDER_COUNT_FIELDS = ("holders_total", "holders_dead_threads")  # beyond the holders listed
# QueuePool.overflow() starts at -pool_size; max_overflow=-1 means "unlimited".
MAY_BE_NEGATIVE = frozenset({"overflow", "max_overflow"})
MAX_COUNTER = MAX_JSON_NUMBER  # cumulative counters (checkouts, wait milliseconds) grow large


class PayloadError(ValueError):
    """A pool-status body that is not a recognised payload, or holds invalid values."""


def parse_pool_payload(body: str, content_type: str | None, at: datetime) -> PoolSample:
    """Recognise the payload by its content and read it into a PoolSample taken at `at`."""
    text = body.strip().lstrip("\ufeff")
    if not text:
        raise PayloadError("empty body, not a pool-status payload")
    media = (content_type or "").split(";")[0].strip().lower()
    if text[0] in '{["':
        try:
            document = loads_bounded(text, numbers=False)
        except JsonLimitError as exc:
            raise PayloadError(f"unacceptable JSON: {exc}") from None
        except ValueError as exc:
            raise PayloadError(f"invalid JSON: {exc}") from None
        return _from_json(document, at)
    if media.endswith("json"):
        raise PayloadError(f"content type {media} but the body is not JSON: {excerpt(text)}")
    if looks_like_html(text, media):
        raise PayloadError(HTML_MESSAGE)
    sample = _from_status_text(text, at)
    if sample is not None:
        return sample
    if _looks_like_prometheus(text):
        return _from_prometheus(text, at)
    raise PayloadError(
        f"unrecognised pool-status payload ({media or 'no content type'}): {excerpt(text)}"
    )


def looks_like_html(text: str, media: str | None = None) -> bool:
    """True for an HTML document (by content type or by its opening tag)."""
    head = text.lstrip()[:200].lower()
    return media in ("text/html", "application/xhtml+xml") or head.startswith(
        ("<!doctype html", "<html", "<head", "<body")
    )


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The start of `text` on one line, quoted, for error messages."""
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[:limit] + "…")


# --- JSON -------------------------------------------------------------------------------------

_JSON_ALIASES: dict[str, tuple[str, ...]] = {
    "size": ("size", "poolsize"),
    "checked_out": ("checkedout", "inuse", "busy"),
    "checked_in": ("checkedin", "idle", "available"),
    "overflow": ("overflow", "currentoverflow"),
    "max_overflow": ("maxoverflow",),
    "timeout": ("timeout", "pooltimeout", "timeoutseconds"),
    "waiting": ("waiting", "waiters", "pending"),
}
_NESTED_KEYS = ("pool", "db", "database")
_STATUS_TEXT_KEYS = ("status", "pool_status", "poolstatus")
# Keys only psycopg_pool's get_stats() has ("pool_size" is shared with the generic JSON shape).
_PSYCOPG_KEYS = frozenset(
    {
        "pool_min",
        "pool_max",
        "pool_available",
        "requests_waiting",
        "usage_ms",
        "requests_num",
        "requests_queued",
        "requests_wait_ms",
        "requests_errors",
        "returns_bad",
        "connections_num",
        "connections_ms",
        "connections_errors",
        "connections_lost",
    }
)


def _normal_key(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def _from_json(document: Any, at: datetime) -> PoolSample:
    if isinstance(document, str):
        sample = _from_status_text(document.strip(), at)
        if sample is None:
            raise PayloadError(
                f"JSON string is not a SQLAlchemy Pool.status() text: {excerpt(document)}"
            )
        return sample
    if not isinstance(document, dict):
        raise PayloadError(f"JSON {type(document).__name__}, expected an object with pool fields")
    if _PSYCOPG_KEYS & document.keys():
        return _from_psycopg(document, at)
    engines = document.get(ENGINES_KEY)
    if isinstance(engines, dict) and engines and all(isinstance(v, dict) for v in engines.values()):
        return _merge_engines({str(k): _from_json(v, at) for k, v in engines.items()}, at)
    by_key = {_normal_key(str(key)): key for key in document}
    fields: dict[str, Any] = {}
    for name, aliases in _JSON_ALIASES.items():
        present = [by_key[alias] for alias in aliases if alias in by_key]
        if present:
            fields[name] = document[present[0]]
    if fields:
        return _from_json_fields(document, fields, at)
    for key in _NESTED_KEYS:
        if isinstance(document.get(key), dict):
            return _from_json(document[key], at)
    text_keys = [key for key in (*_STATUS_TEXT_KEYS, *_NESTED_KEYS) if key in document]
    for key in text_keys + [key for key in document if key not in text_keys]:
        value = document[key]
        if isinstance(value, str):
            sample = _from_status_text(value.strip(), at)
            if sample is not None:
                return sample
    keys = ", ".join(sorted(str(key) for key in document)[:12]) or "none"
    raise PayloadError(
        f"JSON object without pool fields (expected size, checked_out, ...); keys: {keys}"
    )


def _from_json_fields(document: dict[str, Any], raw: dict[str, Any], at: datetime) -> PoolSample:
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if value is None:
            continue  # null: the app could not say (e.g. no counts for this pool class)
        if name == "timeout":
            values[name] = _number(value, name, allow_negative=False, limit=MAX_SECONDS)
        else:
            values[name] = _count(value, name)
    holders = _holders(document.get("holders"))
    counters = _counters(document.get("counters"))
    for name in HOLDER_COUNT_FIELDS:
        if document.get(name) is not None:
            values[name] = _count(document[name], name)
    payload_format = SQLALCHEMY_NULLPOOL if document.get("pool_class") == NULLPOOL_CLASS else JSON
    return PoolSample(
        at=at, payload_format=payload_format, holders=holders, counters=counters, **values
    )


def _merge_engines(samples: dict[str, PoolSample], at: datetime) -> PoolSample:
    """Several engines behind one URL (pooldoctor's app helper): one sample of their totals."""
    if len(samples) == 1:
        return next(iter(samples.values()))
    parts = list(samples.values())

    def total(name: str) -> Any:
        values = [getattr(sample, name) for sample in parts]
        return None if None in values else sum(values)

    timeouts = [sample.timeout for sample in parts if sample.timeout is not None]
    counters: dict[str, float] = {}
    for sample in parts:
        for name, value in sample.counters.items():
            counters[name] = counters.get(name, 0.0) + value
    formats = {sample.payload_format for sample in parts}
    note = f"summed {len(parts)} engines ({', '.join(samples)}); ?engine=NAME selects one"
    return PoolSample(
        at=at,
        payload_format=formats.pop() if len(formats) == 1 else JSON,
        timeout=max(timeouts) if timeouts else None,
        counters=counters,
        holders=tuple(
            sorted((h for s in parts for h in s.holders), key=lambda holder: -holder.age_seconds)
        ),
        notes=(note, *(n for sample in parts for n in sample.notes)),
        **{name: total(name) for name in (*COUNT_FIELDS, *HOLDER_COUNT_FIELDS)},
    )


def _holders(raw: Any) -> tuple[Holder, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise PayloadError("holders must be a list of {origin, age_seconds, thread, thread_alive}")
    holders = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("origin"), str):
            raise PayloadError(f"holders[{index}] must be an object with an origin string")
        age = _number(item.get("age_seconds"), f"holders[{index}].age_seconds", False, MAX_SECONDS)
        thread = item.get("thread")
        if thread is not None and not isinstance(thread, str):
            thread = str(thread)
        alive = item.get("thread_alive")
        if not isinstance(alive, bool):  # absent (older helpers, other apps) or not a claim
            alive = None
        holders.append(Holder(item["origin"], age, thread, alive))
    return tuple(sorted(holders, key=lambda holder: -holder.age_seconds))


def _counters(raw: Any) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PayloadError("counters must be an object of name: number")
    return {
        str(name): _number(value, f"counters.{name}", False, MAX_COUNTER)
        for name, value in raw.items()
    }


# --- value validation -------------------------------------------------------------------------


def _number(value: Any, name: str, allow_negative: bool, limit: float = MAX_COUNT) -> float:
    if isinstance(value, bool) or value is None:
        raise PayloadError(f"{name} is not a number: {value!r}")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise PayloadError(f"{name} is not a number: {excerpt(value, 30)}") from None
    if not isinstance(value, int | float):
        raise PayloadError(f"{name} is not a number: {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise PayloadError(f"{name} is not a finite number: {value!r}")
    if abs(number) > limit:
        raise PayloadError(f"{name} is out of range: {number:g} (at most {limit:g})")
    if number < 0 and not allow_negative:
        raise PayloadError(f"{name} is negative: {value!r}")
    return number


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any, name: str, field_name: str | None = None) -> int:
    """A whole, non-negative number (overflow may be negative); `name` is used in messages."""
    number = _number(value, name, allow_negative=(field_name or name) in MAY_BE_NEGATIVE)
    if not number.is_integer():
        raise PayloadError(f"{name} is not a whole number: {value!r}")
    return int(number)


# --- SQLAlchemy Pool.status() ----------------------------------------------------------------

_QUEUEPOOL_STATUS = re.compile(
    r"Pool size:\s*(?P<size>-?\d{1,12})\s+Connections in pool:\s*(?P<checked_in>-?\d{1,12})\s+"
    r"Current Overflow:\s*(?P<overflow>-?\d{1,12})\s+"
    r"Current Checked out connections:\s*(?P<checked_out>-?\d{1,12})",
    re.IGNORECASE,
)
_COUNTERLESS_POOLS = re.compile(r"^(StaticPool|SingletonThreadPool|AssertionPool)\b")


def _from_status_text(text: str, at: datetime) -> PoolSample | None:
    match = _QUEUEPOOL_STATUS.search(text)
    if match:
        counts = {name: _count(int(value), name) for name, value in match.groupdict().items()}
        notes: tuple[str, ...] = ()
        if counts["overflow"] < 0:
            notes = ("overflow is QueuePool's raw counter: it starts at -pool_size",)
        return PoolSample(
            at=at,
            payload_format=SQLALCHEMY_STATUS,
            size=counts["size"],
            checked_out=counts["checked_out"],
            checked_in=counts["checked_in"],
            overflow=counts["overflow"],
            notes=notes,
        )
    if text == "NullPool":
        return PoolSample(at=at, payload_format=SQLALCHEMY_NULLPOOL)
    other = _COUNTERLESS_POOLS.match(text)
    if other:
        raise PayloadError(f"SQLAlchemy {other.group(1)} reports no pool counters")
    return None


# --- psycopg_pool get_stats() ----------------------------------------------------------------


def _from_psycopg(stats: dict[str, Any], at: datetime) -> PoolSample:
    counters: dict[str, float] = {}
    for name, value in stats.items():
        if name in _PSYCOPG_KEYS or name == "pool_size":
            counters[name] = _number(value, name, allow_negative=False, limit=MAX_COUNTER)
        elif _is_finite_number(value) and abs(value) <= MAX_COUNTER:
            counters[str(name)] = float(value)  # extra keys an app may add, kept when numeric

    def stat(name: str) -> int:
        return _count(stats.get(name, 0), name)  # get_stats() may omit zero keys

    opened, available = stat("pool_size"), stat("pool_available")
    if available > opened:
        raise PayloadError(f"pool_available ({available}) exceeds pool_size ({opened})")
    return PoolSample(
        at=at,
        payload_format=PSYCOPG_POOL,
        size=stat("pool_max") if "pool_max" in stats else None,
        checked_out=opened - available,
        checked_in=available,
        overflow=0,
        max_overflow=0,
        waiting=stat("requests_waiting"),
        counters=counters,
    )


# --- Prometheus exposition text --------------------------------------------------------------

_PROM_SAMPLE = re.compile(
    r"^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)"
    r"(?P<labels>\{(?:[^\"}]|\"(?:[^\"\\]|\\.)*\")*\})?"
    r"[ \t]+(?P<value>\S+)(?:[ \t]+(?P<timestamp>-?\d+(?:\.\d+)?))?[ \t]*$"
)
# Suffix after "pool_" (or after the whole "pool" word) -> PoolSample field.
_PROM_FIELDS: dict[str, str] = {
    "size": "size",
    "size_total": "size",  # the seed incident's db_pool_size_total gauge
    "checked_out": "checked_out",
    "checkedout": "checked_out",
    "in_use": "checked_out",
    "used": "checked_out",
    "busy": "checked_out",
    "checked_in": "checked_in",
    "checkedin": "checked_in",
    "idle": "checked_in",
    "available": "checked_in",
    "overflow": "overflow",
    "max_overflow": "max_overflow",
    "timeout_seconds": "timeout",
    "timeout": "timeout",
    "waiting": "waiting",
    "pending": "waiting",
}
_PROM_COUNTERS: dict[str, str] = {
    "max": "pool_max",
    "wait_time_seconds_sum": "wait_time_seconds_sum",
    "wait_time_seconds_count": "wait_time_seconds_count",
    "use_time_seconds_sum": "use_time_seconds_sum",
    "use_time_seconds_count": "use_time_seconds_count",
    "checkouts_total": "checkouts",
    "checkouts": "checkouts",
    "timeouts_total": "pool_timeouts",
    "invalidations_total": "invalidations",
    "oldest_checkout_age_seconds": "oldest_checkout_age_seconds",
}
_PROM_IGNORED_SUFFIXES = ("_created", "_bucket")
# OpenTelemetry semantic-convention series -> a pool-word name the table above reads; the count
# splits by its state label (current `db_client_connection_state`, older `state`).
_OTEL_NAMES: dict[str, str] = {
    "db_client_connection_max": "otel_pool_max",
    "db_client_connections_max": "otel_pool_max",
    "db_client_connection_pending_requests": "otel_pool_pending",
    "db_client_connections_pending_requests": "otel_pool_pending",
    "db_client_connection_timeouts_total": "otel_pool_timeouts_total",
    "db_client_connections_timeouts_total": "otel_pool_timeouts_total",
    "db_client_connection_wait_time_seconds_sum": "otel_pool_wait_time_seconds_sum",
    "db_client_connection_wait_time_seconds_count": "otel_pool_wait_time_seconds_count",
    "db_client_connection_use_time_seconds_sum": "otel_pool_use_time_seconds_sum",
    "db_client_connection_use_time_seconds_count": "otel_pool_use_time_seconds_count",
}
_OTEL_COUNTS = ("db_client_connection_count", "db_client_connections_usage")
_OTEL_STATE = re.compile(r'(?:^|[{,])\s*(?:db_client_connection_state|state)="(used|idle)"')
_POOL_WORD = re.compile(r"(?:^|_)pool_")


@dataclass
class _Series:
    total: float = 0.0
    count: int = 0
    skipped: list[str] = field(default_factory=list)


def _looks_like_prometheus(text: str) -> bool:
    """True when the first non-comment line is a sample with a numeric value."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            match = _PROM_SAMPLE.match(stripped)
            if match is None:
                return False
            try:
                float(match.group("value"))
            except ValueError:
                return False
            return True
    return False


def _from_prometheus(text: str, at: datetime) -> PoolSample:
    series: dict[str, _Series] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _PROM_SAMPLE.match(stripped)
        if match is None:
            raise PayloadError(f"Prometheus text: line {number} is not a sample: {excerpt(line)}")
        name = _otel_alias(match.group("name"), match.group("labels") or "")
        if not _POOL_WORD.search(name) or name.endswith(_PROM_IGNORED_SUFFIXES):
            continue
        try:
            value = float(match.group("value"))
        except ValueError:
            shown = excerpt(match.group("value"), 30)
            raise PayloadError(f"Prometheus text: {name} value is not a number: {shown}") from None
        entry = series.setdefault(name, _Series())
        if math.isfinite(value):
            entry.total += value
            entry.count += 1
        else:
            entry.skipped.append(match.group("value"))
    return _prometheus_sample(series, at)


def _otel_alias(name: str, labels: str) -> str:
    """The pool-word name an OpenTelemetry pool series is read as; other names unchanged."""
    if name in _OTEL_COUNTS:
        state = _OTEL_STATE.search(labels)
        return f"otel_pool_{state.group(1)}" if state else name
    return _OTEL_NAMES.get(name, name)


def _prometheus_sample(series: dict[str, _Series], at: datetime) -> PoolSample:
    values: dict[str, Any] = {}
    counters: dict[str, float] = {}
    notes: list[str] = []
    for name, entry in series.items():
        suffix = _POOL_WORD.split(name, maxsplit=1)[1]
        if entry.skipped:
            notes.append(f"{name}: ignored non-finite value(s) {', '.join(entry.skipped)}")
        if entry.count == 0:
            continue
        if entry.count > 1:
            notes.append(f"{name}: summed {entry.count} series")
        target = _PROM_FIELDS.get(suffix)
        if target is None or target in values:
            if entry.total < 0:
                notes.append(f"{name}: negative ({entry.total:g}), ignored")
            elif entry.total > MAX_COUNTER:
                notes.append(f"{name}: out of range ({entry.total:g}), ignored")
            else:
                counters[_PROM_COUNTERS.get(suffix, name)] = entry.total
        elif target == "timeout":
            values[target] = _number(entry.total, name, allow_negative=False, limit=MAX_SECONDS)
        elif target == "checked_in" and entry.total < 0 and suffix == "idle":
            # db_pool_idle is often set to size - checkedout, negative while overflow is in use.
            notes.append(f"{name}: negative ({entry.total:g}), read as 0 idle connections")
            values[target] = 0
        else:
            values[target] = _count(entry.total, name, target)
    if not values:
        unusable = [name for name, entry in series.items() if entry.skipped and not entry.count]
        if unusable:
            shown = ", ".join(f"{n} {series[n].skipped[0]}" for n in sorted(unusable)[:4])
            raise PayloadError(f"Prometheus pool gauges without a finite value: {shown}")
        found = ", ".join(sorted(series)[:8]) or "no *_pool_* metric"
        raise PayloadError(
            f"Prometheus text without pool gauges (e.g. db_pool_checked_out); found: {found}"
        )
    return PoolSample(
        at=at, payload_format=PROMETHEUS, counters=counters, notes=tuple(notes), **values
    )
