"""What the report's charts show, from the readings (pure): series, marks and a text summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

from pooldoctor.durations import format_duration
from pooldoctor.evidence import LogEvent
from pooldoctor.readings import Readings
from pooldoctor.readings.app import is_client
from pooldoctor.readings.pools import InstanceFill
from pooldoctor.report.model import ChartData, ChartKind, KeyTime, Mark, Series
from pooldoctor.report.textfmt import as_utc, clock, hhmm
from pooldoctor.report.timeline import NON_ERROR_EVENTS, log_event_label

# Short names of key times drawn on the error chart (the key-times table has the long ones).
MARK_LABELS = {"first_error": "first error", "peak_errors": "peak", "oldest_stuck": "oldest stuck"}
# Applications in the server-connections chart; smaller ones are summed into "other".
MAX_APPLICATIONS = 8
# Pool charts drawn for a fleet: the instances that came closest to (or sat at) their limit.
MAX_POOL_CHARTS = 6
# The error chart draws at most this many bars along time: a log of several days is counted in
# wider bars (the first of BAR_MINUTES that fits) instead of thousands of one-minute bars.
MAX_TIME_BARS = 120
BAR_MINUTES = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080)


def _pool_chart(number: int, fill: InstanceFill) -> ChartData | None:
    samples = [s for s in fill.samples if s.in_use is not None]
    if not samples:
        return None
    name = fill.label
    times = tuple(as_utc(s.at) for s in samples)
    series = [
        Series("checked-out", "checked out", times, tuple(float(s.in_use or 0) for s in samples))
    ]
    if any(s.waiting is not None or s.queued for s in samples):
        waiting = tuple(float(s.queued) for s in samples)
        series.append(Series("waiting", "waiting for a connection", times, waiting))
    capacities = [s.capacity for s in samples]
    if all(c is not None for c in capacities):
        series.append(
            Series("capacity", "capacity", times, tuple(float(c or 0) for c in capacities), True)
        )
    peak = max(samples, key=lambda s: s.in_use or 0)
    capacity = f" of {peak.capacity}" if peak.capacity is not None else ""
    alt = (
        f"{len(samples)} samples of {name} from {clock(times[0])} to {clock(times[-1])} UTC; "
        f"checked out {', '.join(str(s.in_use) for s in samples)}; "
        f"peak {peak.in_use}{capacity} at {clock(peak.at)}"
    )
    if len(series) > 1 and series[1].key == "waiting":
        alt += f"; waiting peaked at {int(max(series[1].ys))}"
    return ChartData(
        slug=f"pool-usage-{number}",
        title=f"Pool connections over time: {name}",
        alt=alt + ".",
        kind=ChartKind.TIME_LINES,
        x_label="time (UTC)",
        y_label="connections",
        series=tuple(series),
    )


def pool_charts(readings: Readings) -> list[ChartData]:
    """Checked-out and waiting against capacity over time, one chart per app instance; for a
    fleet, only the MAX_POOL_CHARTS instances under the most pressure."""
    numbered = list(enumerate(readings.pool.fills, start=1))
    if len(numbered) > MAX_POOL_CHARTS:
        ranked = sorted(numbered, key=lambda item: item[1].pressure(), reverse=True)
        numbered = sorted(ranked[:MAX_POOL_CHARTS])
    charts = (_pool_chart(n, inst) for n, inst in numbered)
    return [chart for chart in charts if chart is not None]


def error_chart(readings: Readings, key_times: Sequence[KeyTime]) -> ChartData | None:
    """Errors per UTC minute (wider bars for long logs), stacked by kind, across every log file,
    with the key times marked."""
    per_minute: dict[LogEvent, Counter[datetime]] = {}
    for summary in readings.logs.occurrences:
        if summary.event in NON_ERROR_EVENTS:
            continue
        per_kind = per_minute.setdefault(summary.event, Counter())
        for item in summary.per_minute:
            per_kind[as_utc(item.minute).replace(second=0, microsecond=0)] += item.count
    minutes = sorted({minute for per_kind in per_minute.values() for minute in per_kind})
    if not minutes:
        return None
    low, high = _log_window(readings, minutes[0], minutes[-1])
    bar = bar_width(low, high)
    counts = {event: _rebinned(per_kind, low, bar) for event, per_kind in per_minute.items()}
    bars = sorted({start for per_kind in counts.values() for start in per_kind})
    ordered = sorted(counts, key=lambda event: -sum(counts[event].values()))
    series = tuple(
        Series(
            event.value,
            log_event_label(event),
            tuple(bars),
            tuple(float(counts[event].get(start, 0)) for start in bars),
        )
        for event in ordered
    )
    marks = tuple(
        Mark(MARK_LABELS.get(kt.name, kt.label), as_utc(kt.at))
        for kt in key_times
        if kt.at is not None
        and kt.name != "detection"
        and low <= as_utc(kt.at) <= high.replace(second=59)
    )
    totals = ", ".join(f"{int(sum(s.ys))} {s.label}" for s in series)
    per = _per(bar)
    return ChartData(
        slug="errors-per-minute",
        title=f"Errors per {per} by kind",
        alt=f"Log window {_window_text(low, high)} UTC, errors per {per}: {totals}.",
        kind=ChartKind.TIME_BARS,
        x_label="minute (UTC)" if bar == timedelta(minutes=1) else "time (UTC)",
        y_label=f"errors per {per}",
        series=series,
        marks=marks,
        span=(low, high + bar),
        bar_seconds=bar.total_seconds(),
    )


def bar_width(low: datetime, high: datetime) -> timedelta:
    """The narrowest bar (in whole minutes) that draws minutes low..high in MAX_TIME_BARS bars."""
    minutes = (high - low) // timedelta(minutes=1) + 1
    for width in BAR_MINUTES:
        if -(-minutes // width) <= MAX_TIME_BARS:
            return timedelta(minutes=width)
    return timedelta(minutes=BAR_MINUTES[-1])


def _rebinned(per_minute: Counter[datetime], low: datetime, bar: timedelta) -> Counter[datetime]:
    """Per-minute counts summed into bars of `bar` starting at `low`."""
    bars: Counter[datetime] = Counter()
    for minute, count in per_minute.items():
        bars[low + (minute - low) // bar * bar] += count
    return bars


def _window_text(low: datetime, high: datetime) -> str:
    """`09:30 to 09:58` within a day; `2024-12-01 00:00 to 2024-12-03 23:59` across days."""
    if low.date() == high.date():
        return f"{hhmm(low)} to {hhmm(high)}"
    return f"{low:%Y-%m-%d %H:%M} to {high:%Y-%m-%d %H:%M}"


def _per(bar: timedelta) -> str:
    """'minute', '5 minutes', 'hour', '6 hours', 'day' for a bar's width."""
    minutes = int(bar.total_seconds() // 60)
    for unit, size in (("week", 10080), ("day", 1440), ("hour", 60), ("minute", 1)):
        if minutes % size == 0:
            count = minutes // size
            return unit if count == 1 else f"{count} {unit}s"
    return f"{minutes} minutes"


def _log_window(readings: Readings, first: datetime, last: datetime) -> tuple[datetime, datetime]:
    """The minutes the logs cover (quiet ones included), at least the minutes with errors."""
    logs = readings.evidence.logs
    starts = [as_utc(log.first) for log in logs if log.first is not None]
    ends = [as_utc(log.last) for log in logs if log.last is not None]
    low = min([first, *starts]).replace(second=0, microsecond=0)
    high = max([last, *ends]).replace(second=0, microsecond=0)
    return low, high


def connections_chart(readings: Readings) -> ChartData | None:
    """Server connections at the last pg_stat_activity sample, by application and state."""
    sample = readings.activity
    if sample is None:
        return None
    clients = [b for b in sample.backends if is_client(b)]
    if not clients:
        return None
    per_app = Counter(b.application_name or "(no application_name)" for b in clients)
    kept = [app for app, _ in per_app.most_common(MAX_APPLICATIONS)]

    def app_of(name: str | None) -> str:
        app = name or "(no application_name)"
        return app if app in kept else "other"

    apps = kept + (["other"] if len(per_app) > len(kept) else [])
    by_state: dict[str, Counter[str]] = {}
    for backend in clients:
        state = backend.state or "unknown"
        by_state.setdefault(state, Counter())[app_of(backend.application_name)] += 1
    states = sorted(by_state, key=lambda state: -sum(by_state[state].values()))
    series = tuple(
        Series(
            f"state-{state.replace(' ', '-')}",
            state,
            tuple(apps),
            tuple(float(by_state[state].get(app, 0)) for app in apps),
        )
        for state in states
    )
    parts = "; ".join(
        f"{app}: "
        + ", ".join(f"{int(by_state[s][app])} {s}" for s in states if by_state[s].get(app))
        for app in apps
    )
    return ChartData(
        slug="server-connections",
        title=f"Server connections by application and state at {hhmm(sample.at)} UTC",
        alt=f"{len(clients)} client connections. {parts}.",
        kind=ChartKind.CATEGORY_BARS,
        x_label="connections",
        y_label="application",
        series=series,
    )


# Age buckets of the held-work chart: (upper bound in seconds, label); the last is open-ended.
AGE_BUCKETS: tuple[tuple[float, str], ...] = (
    (1.0, "< 1s"),
    (10.0, "1–10s"),
    (60.0, "10s–1m"),
    (300.0, "1–5m"),
    (900.0, "5–15m"),
    (3600.0, "15m–1h"),
    (float("inf"), "≥ 1h"),
)


def _bucket(age: float) -> int:
    return next(i for i, (bound, _) in enumerate(AGE_BUCKETS) if age < bound)


def held_ages(readings: Readings) -> tuple[list[float], list[float]]:
    """Ages in seconds of open server transactions and of app checkouts at the last sample."""
    sessions: list[float] = []
    sample = readings.activity
    if sample is not None:
        seen = as_utc(sample.at)
        for backend in sample.backends:
            if is_client(backend) and backend.xact_start:
                sessions.append(max(0.0, (seen - as_utc(backend.xact_start)).total_seconds()))
    checkouts = [work.age_seconds for work in readings.stuck.checkouts]
    return sessions, checkouts


def age_chart(readings: Readings) -> ChartData | None:
    """Open transactions and held checkouts at collection, counted by age bucket."""
    sessions, checkouts = held_ages(readings)
    ages = sessions + checkouts
    if not ages:
        return None
    low, high = _bucket(min(ages)), _bucket(max(ages))
    labels = tuple(label for _, label in AGE_BUCKETS[low : high + 1])
    series = []
    for key, label, values in (
        ("sessions", "open transactions (pg_stat_activity)", sessions),
        ("checkouts", "checked-out connections (app)", checkouts),
    ):
        if values:
            counts = Counter(_bucket(age) for age in values)
            ys = tuple(float(counts.get(i, 0)) for i in range(low, high + 1))
            series.append(Series(key, label, labels, ys))
    described = "; ".join(
        f"{len(values)} {label}, oldest {format_duration(max(values))}"
        for label, values in (
            ("open transactions", sessions),
            ("held checkouts", checkouts),
        )
        if values
    )
    return ChartData(
        slug="held-by-age",
        title="Open transactions and held checkouts by age",
        alt=f"{described}.",
        kind=ChartKind.CATEGORY_BARS,
        x_label="count",
        y_label="age",
        series=tuple(series),
        stacked=False,
    )


def build_charts(readings: Readings, key_times: Sequence[KeyTime]) -> tuple[ChartData, ...]:
    """Every chart the evidence supports, in reading order; a chart with no data is left out."""
    charts: list[ChartData | None] = [
        *pool_charts(readings),
        error_chart(readings, key_times),
        connections_chart(readings),
        age_chart(readings),
    ]
    return tuple(chart for chart in charts if chart is not None)
