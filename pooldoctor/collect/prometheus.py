"""Prometheus collector: range queries for each instance's pool series, turned into pool samples."""

from __future__ import annotations

import base64
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pooldoctor.collect.pool_payloads import excerpt, looks_like_html
from pooldoctor.collect.pool_status import describe_error
from pooldoctor.durations import format_duration
from pooldoctor.evidence import (
    MAX_COUNT,
    PoolInstance,
    PoolSample,
    PrometheusEvidence,
    SeriesPoint,
    SourceState,
    SourceStatus,
)
from pooldoctor.jsonio import MAX_JSON_NUMBER, loads_bounded
from pooldoctor.redact import redact_url, scrub_secrets, url_secrets

DEFAULT_WINDOW = timedelta(minutes=30)
MAX_POINTS = 60  # per series: the step is the window divided by this, in whole seconds
MAX_SERIES = 20_000  # per query; past it the rest is dropped with a note
QUERY_THREADS = 4
MAX_ANSWER_BYTES = 64 * 1024 * 1024  # 20,000 series of 60 points is about 40 MiB of JSON
READ_BYTES = 1024 * 1024
# A whole answer must arrive within this many timeouts (each read also has the timeout): a peer
# dripping bytes slowly is cut off instead of holding the run for hours.
ANSWER_TIMEOUTS = 2.0
MAX_LABEL_CHARS = 256
LATEST_TIMESTAMP = 4_102_444_800.0  # 2100-01-01: later (or negative) sample times are nonsense
# Fields that evidence requires to be counts (0..MAX_COUNT); max_overflow may be -1.
_COUNT_TARGETS = frozenset({"state", "size", "checked_out", "checked_in", "waiting"})
PAYLOAD_FORMAT = "prometheus-history"
INSTANCE_LABELS = ("job", "instance")
# Pool name labels as OpenTelemetry exporters write them (current, then older spellings), and
# pooldoctor's own `engine`.
POOL_LABELS = ("db_client_connection_pool_name", "pool_name", "engine")
STATE_LABELS = ("db_client_connection_state", "state")


@dataclass(frozen=True)
class SeriesQuery:
    """One range query: the PromQL and which PoolSample field or counter its values feed."""

    target: str  # a PoolSample field, `counters.<name>`, or `state` (split by the state label)
    names: tuple[str, ...]  # metric names, tried together with `or`
    keep_state: bool = False

    def promql(self) -> str:
        labels = [*INSTANCE_LABELS, *POOL_LABELS, *(STATE_LABELS if self.keep_state else ())]
        metrics = " or ".join(self.names)
        return f"sum by ({', '.join(labels)}) ({metrics})"


POOL_QUERIES: tuple[SeriesQuery, ...] = (
    SeriesQuery(
        "state", ("db_client_connection_count", "db_client_connections_usage"), keep_state=True
    ),
    SeriesQuery("counters.pool_max", ("db_client_connection_max", "db_client_connections_max")),
    SeriesQuery(
        "waiting",
        ("db_client_connection_pending_requests", "db_client_connections_pending_requests"),
    ),
    SeriesQuery(
        "counters.pool_timeouts",
        (
            "db_client_connection_timeouts_total",
            "db_client_connections_timeouts_total",
            "pooldoctor_pool_timeouts_total",
        ),
    ),
    SeriesQuery("counters.wait_time_seconds_sum", ("db_client_connection_wait_time_seconds_sum",)),
    SeriesQuery(
        "counters.wait_time_seconds_count", ("db_client_connection_wait_time_seconds_count",)
    ),
    SeriesQuery("counters.use_time_seconds_sum", ("db_client_connection_use_time_seconds_sum",)),
    SeriesQuery(
        "counters.use_time_seconds_count", ("db_client_connection_use_time_seconds_count",)
    ),
    SeriesQuery("checked_out", ("pooldoctor_pool_checked_out",)),
    SeriesQuery("checked_in", ("pooldoctor_pool_checked_in",)),
    SeriesQuery("size", ("pooldoctor_pool_size",)),
    SeriesQuery("max_overflow", ("pooldoctor_pool_max_overflow",)),
)
SERVER_QUERIES: dict[str, str] = {  # postgres_exporter, when present
    "pg_stat_activity_count": "sum by (instance, datname, state) (pg_stat_activity_count)",
    "pg_settings_max_connections": "max by (instance) (pg_settings_max_connections)",
    "pg_settings_superuser_reserved_connections": (
        "max by (instance) (pg_settings_superuser_reserved_connections)"
    ),
}
_INT_FIELDS = ("checked_out", "checked_in", "size", "max_overflow", "waiting")


class PrometheusError(RuntimeError):
    """A query Prometheus refused or answered with something that is not its JSON API;
    `unreachable` when no answer came at all (refused, timed out, bad address)."""

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


def history_window(
    since: datetime | None, until: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """The incident window: --since/--until, defaulting to the last 30 minutes."""
    end = until or now
    start = since or end - DEFAULT_WINDOW
    return start, end


def step_for(start: datetime, end: datetime) -> float:
    """Whole seconds between points so that a series has at most MAX_POINTS of them."""
    return float(max(1, math.ceil((end - start).total_seconds() / MAX_POINTS)))


def range_query(
    base_url: str, promql: str, start: datetime, end: datetime, step: float, timeout: float
) -> list[dict[str, Any]]:
    """GET /api/v1/query_range; the `result` list, or PrometheusError with a one-line reason."""
    query = urllib.parse.urlencode(
        {
            "query": promql,
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": f"{step:g}",
            "timeout": f"{timeout:g}s",
        }
    )
    parts = urllib.parse.urlsplit(base_url)
    headers = {"Accept": "application/json"}
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
        parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
    url = f"{urllib.parse.urlunsplit(parts).rstrip('/')}/api/v1/query_range?{query}"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = _read_answer(response, time.monotonic() + ANSWER_TIMEOUTS * timeout)
            body = data.decode("utf-8", errors="replace")
            content_type = response.headers.get("Content-Type")
    except urllib.error.HTTPError as exc:
        body = exc.read(MAX_ANSWER_BYTES).decode("utf-8", errors="replace")
        raise PrometheusError(
            f"HTTP {exc.code}: {_api_error(body, exc.headers.get('Content-Type'))}"
        ) from None
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
        if isinstance(reason, TimeoutError) or str(reason) == "timed out":
            text = f"no answer within {timeout:g}s from {where}"
        elif isinstance(reason, OSError):
            text = describe_error(reason, where)  # "connection refused by …", "DNS lookup …"
        else:
            text = str(reason)
        raise PrometheusError(f"cannot query: {text}", unreachable=True) from None
    try:
        document = loads_bounded(body, numbers=False)
    except ValueError:
        raise PrometheusError(f"not the Prometheus API: {_api_error(body, content_type)}") from None
    if not isinstance(document, dict) or document.get("status") != "success":
        raise PrometheusError(_api_error(body, content_type))
    payload = document.get("data")
    result = payload.get("result", []) if isinstance(payload, dict) else None
    if not isinstance(result, list):
        raise PrometheusError("unexpected answer: data.result is not a list")
    return result


def _read_answer(response: Any, deadline: float) -> bytes:
    """The body, up to MAX_ANSWER_BYTES and until `deadline`; PrometheusError past either."""
    pieces: list[bytes] = []
    size = 0
    while piece := response.read1(READ_BYTES):
        pieces.append(piece)
        size += len(piece)
        if size > MAX_ANSWER_BYTES:
            raise PrometheusError(
                f"answer larger than {MAX_ANSWER_BYTES // 1024 // 1024} MiB; narrow the window"
            )
        if time.monotonic() > deadline:
            raise PrometheusError(  # as good as unreachable: the other queries are not tried
                f"answer not complete after {size} bytes; too slow", unreachable=True
            )
    return b"".join(pieces)


def well_formed(result: Sequence[Any]) -> tuple[list[dict[str, Any]], int]:
    """The series of a query result that have the API's shape (labels: a string map, values: a
    list), labels cut to MAX_LABEL_CHARS; and how many did not."""
    kept: list[dict[str, Any]] = []
    for series in result:
        if not isinstance(series, dict):
            continue
        labels, values = series.get("metric") or {}, series.get("values") or []
        if not isinstance(labels, dict) or not isinstance(values, list):
            continue
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
            continue
        clean = {k[:MAX_LABEL_CHARS]: v[:MAX_LABEL_CHARS] for k, v in labels.items()}
        kept.append({"metric": clean, "values": values})
    return kept, len(result) - len(kept)


def answer_secrets(base_url: str) -> set[str]:
    """The URL's credentials in every spelling an answer could echo, the Basic token included."""
    secrets = url_secrets(base_url)
    parts = urllib.parse.urlsplit(base_url)
    if parts.password is not None:
        user = urllib.parse.unquote(parts.username or "")
        password = urllib.parse.unquote(parts.password)
        secrets.add(base64.b64encode(f"{user}:{password}".encode()).decode())
    return secrets


def _api_error(body: str, content_type: str | None) -> str:
    try:
        document = loads_bounded(body, numbers=False)
    except ValueError:
        document = None
    if isinstance(document, dict) and document.get("error"):
        return f"{document.get('errorType', 'error')}: {excerpt(str(document['error']))}"
    if looks_like_html(body, content_type):
        return "an HTML page (is this the Prometheus base URL?)"
    return excerpt(body) or "empty answer"


def _first_label(labels: Mapping[str, str], names: Sequence[str]) -> str:
    return next((labels[name] for name in names if labels.get(name)), "")


def instance_key(labels: Mapping[str, str]) -> str:
    """How an instance's pool is named in the evidence: `instance` plus its pool name if any."""
    instance = labels.get("instance") or labels.get("job") or "unlabelled"
    pool = _first_label(labels, POOL_LABELS)
    return f"{instance} {pool}" if pool else instance


@dataclass
class _Accumulator:
    """Values per instance key, per timestamp, per target field."""

    points: dict[str, dict[float, dict[str, float]]] = field(default_factory=dict)

    def add(self, key: str, at: float, target: str, value: float) -> None:
        slot = self.points.setdefault(key, {}).setdefault(at, {})
        slot[target] = slot.get(target, 0.0) + value

    def put_if_absent(self, key: str, at: float, target: str, value: float) -> None:
        slot = self.points.setdefault(key, {}).setdefault(at, {})
        slot.setdefault(target, value)


def _add_series(acc: _Accumulator, query: SeriesQuery, series: Mapping[str, Any]) -> None:
    labels = series.get("metric") or {}
    key = instance_key(labels)
    target = query.target
    if query.keep_state:
        state = _first_label(labels, STATE_LABELS)
        target = {"used": "checked_out", "idle": "checked_in"}.get(state, "")
        if not target:
            return
    low, high = _bounds(query.target)
    for point in series.get("values") or []:
        checked = _point(point, low, high)
        if checked is None:
            continue
        at, value = checked
        if query.keep_state:
            acc.add(key, at, target, value)
        else:
            acc.put_if_absent(key, at, target, value)


def _bounds(target: str) -> tuple[float, float]:
    """The range a value of `target` must lie in to be evidence (the rest is dropped)."""
    if target in _COUNT_TARGETS:
        return 0.0, float(MAX_COUNT)
    if target == "max_overflow":
        return -1.0, float(MAX_COUNT)
    return 0.0, MAX_JSON_NUMBER


def _point(point: Any, low: float, high: float) -> tuple[float, float] | None:
    """(unix time, value) of one [time, "value"] pair from outside, or None when either is not
    a finite number in range (NaN gauges, a timestamp past 2100, 1e308)."""
    try:
        at, raw = point
        moment, value = float(at), float(raw)
    except (TypeError, ValueError):
        return None
    if not (0.0 <= moment <= LATEST_TIMESTAMP and math.isfinite(value) and low <= value <= high):
        return None
    return moment, value


def _sample(at: float, values: Mapping[str, float]) -> PoolSample:
    fields: dict[str, Any] = {}
    counters: dict[str, float] = {}
    for target, value in values.items():
        if target.startswith("counters."):
            counters[target.removeprefix("counters.")] = value
        elif target in _INT_FIELDS:
            fields[target] = max(0, round(value))
    return PoolSample(
        at=datetime.fromtimestamp(at, UTC),
        payload_format=PAYLOAD_FORMAT,
        counters=counters,
        **fields,
    )


def pools_from_points(
    points: Mapping[str, Mapping[float, Mapping[str, float]]],
) -> tuple[PoolInstance, ...]:
    """One PoolInstance per instance key, samples in time order."""
    return tuple(
        PoolInstance(
            url=key,
            samples=tuple(_sample(at, values) for at, values in sorted(by_time.items())),
        )
        for key, by_time in sorted(points.items())
    )


def _label(key: str, name: str) -> str | None:
    match = re.search(rf'{name}="([^"]*)"', key)
    return match.group(1) if match else None


def server_summaries(evidence: PrometheusEvidence) -> list[str]:
    """'postgres_exporter db-1:9187: 85 of 100 max_connections' per server, at the window's end."""
    sessions: dict[str, float] = {}
    limits: dict[str, float] = {}
    for key, points in evidence.server_series.items():
        instance = _label(key, "instance") or "?"
        if not points:
            continue
        if key.startswith("pg_settings_max_connections"):
            limits[instance] = points[-1].value
        elif key.startswith("pg_stat_activity_count"):
            sessions[instance] = sessions.get(instance, 0.0) + points[-1].value
    return [
        f"postgres_exporter {instance}: {sessions.get(instance, 0):.0f} of {limit:.0f} "
        "max_connections"
        for instance, limit in sorted(limits.items())
    ]


@dataclass(frozen=True)
class History:
    """What --prometheus produced: pool instances for the evidence, and how they were read."""

    pools: tuple[PoolInstance, ...]
    evidence: PrometheusEvidence

    def status(self, started: datetime, finished: datetime) -> SourceStatus:
        evidence = self.evidence
        seconds = (evidence.end - evidence.start).total_seconds()
        span = format_duration(seconds)
        detail = (
            f"{evidence.instances} instance(s), {evidence.series} series over {span} "
            f"at {evidence.step_seconds:g}s steps"
        )
        for server in server_summaries(evidence):
            detail += f"; {server}"
        for note in (*evidence.notes, *evidence.errors):
            detail += f"; {note}"
        ok = evidence.instances > 0 or (evidence.series > 0 and not evidence.errors)
        state = SourceState.OK if ok else SourceState.ERROR
        if not ok and not evidence.errors:
            detail += "; no pool series found (db_client_connection_count, pooldoctor_pool_*)"
        return SourceStatus(evidence.url, "prometheus", state, detail, started, finished)


def _run(
    base_url: str, promql: str, start: datetime, end: datetime, step: float, timeout: float
) -> list[dict[str, Any]] | PrometheusError:
    try:
        return range_query(base_url, promql, start, end, step, timeout)
    except PrometheusError as exc:
        return exc


def read_history(base_url: str, start: datetime, end: datetime, timeout: float) -> History:
    """Range-query every pool and server series over [start, end]; never raises."""
    step = step_for(start, end)
    shown_url = redact_url(base_url)
    jobs: list[tuple[str, str, SeriesQuery | None]] = [
        (q.names[0], q.promql(), q) for q in POOL_QUERIES
    ]
    jobs += [(name, promql, None) for name, promql in SERVER_QUERIES.items()]
    promqls = [promql for _, promql, _ in jobs]
    # The first query alone: an unreachable server then costs one timeout, not one per query.
    first = _run(base_url, promqls[0], start, end, step, timeout)
    if isinstance(first, PrometheusError) and first.unreachable:
        results: list[list[dict[str, Any]] | PrometheusError] = [first] * len(promqls)
    else:
        with ThreadPoolExecutor(max_workers=QUERY_THREADS, thread_name_prefix="prometheus") as ex:
            rest = ex.map(lambda q: _run(base_url, q, start, end, step, timeout), promqls[1:])
            results = [first, *rest]
    acc = _Accumulator()
    errors: list[str] = []
    notes: list[str] = []
    series_total = malformed_total = 0
    server_series: dict[str, tuple[SeriesPoint, ...]] = {}
    for (name, promql, query), result in zip(jobs, results, strict=True):
        if isinstance(result, PrometheusError):
            if not any(str(result) in error for error in errors):
                errors.append(f"{name}: {result}")
            continue
        result, malformed = well_formed(result)
        malformed_total += malformed
        if len(result) > MAX_SERIES:
            notes.append(
                f"series cap: kept {MAX_SERIES} of {len(result)} series for {promql!r}; "
                "narrow the window or query fewer instances"
            )
            result = sorted(result, key=lambda s: instance_key(s.get("metric") or {}))
            result = result[:MAX_SERIES]
        series_total += len(result)
        for series in result:
            if query is not None:
                _add_series(acc, query, series)
            else:
                labels = series.get("metric") or {}
                selector = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
                points = (_point(p, 0.0, MAX_JSON_NUMBER) for p in series.get("values") or [])
                server_series[f"{name}{{{selector}}}"] = tuple(
                    SeriesPoint(datetime.fromtimestamp(at, UTC), value)
                    for at, value in (p for p in points if p is not None)
                )
    if malformed_total:
        notes.append(f"{malformed_total} series not in the API's shape were dropped")
    pools = pools_from_points(acc.points)
    secrets = answer_secrets(base_url)
    errors = [scrub_secrets(error, secrets) for error in errors]
    evidence = PrometheusEvidence(
        url=shown_url,
        start=start,
        end=end,
        step_seconds=step,
        queries=tuple(promqls),
        series=series_total,
        instances=len(pools),
        server_series=server_series,
        notes=tuple(notes),
        errors=tuple(errors[:3]) + ((f"and {len(errors) - 3} more",) if len(errors) > 3 else ()),
    )
    return History(pools, evidence)
