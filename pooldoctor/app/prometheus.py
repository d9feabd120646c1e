"""Prometheus text exposition (format 0.0.4) of `pool_status` payloads, one `engine` label each."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Metric:
    """One metric family and how to read its value from a payload."""

    name: str
    kind: str  # gauge | counter
    help: str
    key: str  # payload key, or "counters.<name>", or "oldest_age"


METRICS: tuple[Metric, ...] = (
    Metric("pooldoctor_pool_size", "gauge", "Configured pool size (pool_size).", "size"),
    Metric("pooldoctor_pool_checked_out", "gauge", "Connections checked out now.", "checked_out"),
    Metric("pooldoctor_pool_checked_in", "gauge", "Idle connections in the pool.", "checked_in"),
    Metric(
        "pooldoctor_pool_overflow",
        "gauge",
        "SQLAlchemy overflow(): connections beyond pool_size (negative while below it).",
        "overflow",
    ),
    Metric("pooldoctor_pool_max_overflow", "gauge", "Configured max_overflow.", "max_overflow"),
    Metric(
        "pooldoctor_pool_timeout_seconds", "gauge", "Configured pool_timeout in seconds.", "timeout"
    ),
    Metric(
        "pooldoctor_pool_checkouts_total",
        "counter",
        "Checkouts since instrumented.",
        "counters.checkouts",
    ),
    Metric(
        "pooldoctor_pool_checkins_total",
        "counter",
        "Checkins since instrumented.",
        "counters.checkins",
    ),
    Metric(
        "pooldoctor_pool_timeouts_total",
        "counter",
        "Checkouts that gave up after pool_timeout (QueuePool error 3o7r).",
        "counters.pool_timeouts",
    ),
    Metric(
        "pooldoctor_pool_invalidations_total",
        "counter",
        "Connections invalidated since instrumented.",
        "counters.invalidations",
    ),
    Metric(
        "pooldoctor_pool_connects_total",
        "counter",
        "New DBAPI connections opened since instrumented.",
        "counters.connects",
    ),
    Metric(
        "pooldoctor_pool_oldest_checkout_age_seconds",
        "gauge",
        "Age of the oldest checkout still held (0 when none).",
        "oldest_age",
    ),
)


def _value(payload: Mapping[str, Any], key: str) -> float | None:
    if key == "oldest_age":
        if not payload.get("instrumented"):
            return None
        holders = payload.get("holders") or []
        return float(holders[0]["age_seconds"]) if holders else 0.0
    if key.startswith("counters."):
        counters = payload.get("counters") or {}
        raw = counters.get(key.removeprefix("counters."))
    else:
        raw = payload.get(key)
    return float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else None


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def render(payloads: Mapping[str, Mapping[str, Any]]) -> str:
    """Exposition text for engines keyed by label; metrics a pool cannot report are left out."""
    lines: list[str] = []
    for metric in METRICS:
        samples = [
            (name, value)
            for name, payload in payloads.items()
            if (value := _value(payload, metric.key)) is not None
        ]
        if not samples:
            continue
        lines.append(f"# HELP {metric.name} {metric.help}")
        lines.append(f"# TYPE {metric.name} {metric.kind}")
        lines.extend(
            f'{metric.name}{{engine="{_label(name)}"}} {_number(value)}' for name, value in samples
        )
    return "\n".join(lines) + "\n"
