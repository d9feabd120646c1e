"""Draw report charts as standalone SVG with matplotlib's SVG backend (no JavaScript, no assets)."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING

from pooldoctor.report.model import ChartData, ChartKind
from pooldoctor.report.textfmt import as_utc

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# Figure size in inches (SVG points = inches * 72); the page scales it to its width.
FIGURE_INCHES = (5.6, 3.3)
# Colour-blind-safe palette (Okabe-Ito), readable on the white chart panel in print and dark mode.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
CAPACITY_COLOR = "#444444"
MARK_COLOR = "#B00020"
_SVG_OPEN = re.compile(r"<svg\b[^>]*>")
# Legend labels up to this long fit two to a row under the plot; longer ones get a row each.
LEGEND_TWO_COLUMN_CHARS = 30
# FIGURE_INCHES leaves room for this many legend rows; each further row makes the figure taller.
LEGEND_ROWS_INCLUDED = 2
LEGEND_ROW_INCHES = 0.2
# Ticks on a time axis: enough to read times off, few enough not to overlap at phone width.
TIME_TICKS = 5
SECONDS_PER_DAY = 86400  # a longer time axis labels its ticks with the date too


def _seconds(values: Sequence[datetime | str]) -> list[float]:
    """Time-axis positions: POSIX seconds (labels are drawn from them as UTC clock times)."""
    return [as_utc(v).timestamp() for v in values if isinstance(v, datetime)]


def _time_lines(axes: Axes, chart: ChartData) -> None:
    for index, series in enumerate(chart.series):
        if series.dashed:
            (line,) = axes.step(
                _seconds(series.xs),
                series.ys,
                where="post",
                linestyle="--",
                color=CAPACITY_COLOR,
                label=series.label,
                linewidth=1.2,
            )
        else:
            (line,) = axes.plot(
                _seconds(series.xs),
                series.ys,
                marker="o",
                markersize=4,
                color=PALETTE[index % len(PALETTE)],
                label=series.label,
                linewidth=1.8,
            )
        line.set_gid(f"series-{series.key}")
    top = max((max(s.ys) for s in chart.series if s.ys), default=1.0)
    axes.set_ylim(0, max(1.0, top) * 1.15)


def _time_bars(axes: Axes, chart: ChartData) -> None:
    width = chart.bar_seconds * 0.8  # most of a bar's time, leaving a gap to the next
    bottoms = [0.0] * len(chart.series[0].xs) if chart.series else []
    for index, series in enumerate(chart.series):
        xs = _seconds(series.xs)
        drawn = [number for number, count in enumerate(series.ys) if count]  # no empty patches
        bars = axes.bar(
            [xs[number] for number in drawn],
            [series.ys[number] for number in drawn],
            width=width,
            bottom=[bottoms[number] for number in drawn],
            align="edge",
            color=PALETTE[index % len(PALETTE)],
            label=series.label,
        )
        for number, patch in zip(drawn, bars.patches, strict=True):
            patch.set_gid(f"series-{series.key}-{number}")
        bottoms = [b + y for b, y in zip(bottoms, series.ys, strict=True)]
    axes.set_ylim(0, max(1.0, *bottoms) * 1.15)
    _marks(axes, chart)


def _marks(axes: Axes, chart: ChartData) -> None:
    """Key times as dotted vertical lines; moments in the same minute share one label."""
    labels: dict[float, list[str]] = {}
    for mark in chart.marks:
        minute = as_utc(mark.at).replace(second=0, microsecond=0).timestamp()
        labels.setdefault(minute, []).append(mark.label)
    for minute, names in labels.items():
        axes.axvline(minute, color=MARK_COLOR, linestyle=":", linewidth=1.2)
        axes.annotate(
            " / ".join(names),
            xy=(minute, 0.98),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="left",
            fontsize=8.5,
            color=MARK_COLOR,
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1.0},
        )


def _category_bars(axes: Axes, chart: ChartData) -> None:
    labels = [str(x) for x in chart.series[0].xs] if chart.series else []
    positions = list(range(len(labels)))
    lefts = [0.0] * len(labels)
    height = 0.7 if chart.stacked else 0.7 / max(1, len(chart.series))
    for index, series in enumerate(chart.series):
        offset = 0.0 if chart.stacked else (index - (len(chart.series) - 1) / 2) * height
        bars = axes.barh(
            [p + offset for p in positions],
            series.ys,
            left=lefts if chart.stacked else 0.0,
            color=PALETTE[index % len(PALETTE)],
            label=series.label,
            height=height,
        )
        for number, patch in enumerate(bars.patches):
            patch.set_gid(f"series-{series.key}-{number}")
        if chart.stacked:
            lefts = [left + y for left, y in zip(lefts, series.ys, strict=True)]
    axes.set_yticks(positions, [_short(label) for label in labels])
    axes.invert_yaxis()


def _short(label: str, limit: int = 38) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _figure_svg(chart: ChartData) -> str:
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    with matplotlib.rc_context(
        {
            "svg.fonttype": "none",  # text stays text: selectable, searchable, small
            "svg.hashsalt": "pooldoctor",  # stable ids: the same evidence gives the same file
            "font.family": "DejaVu Sans",
            "font.size": 10.0,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    ):
        longest = max((len(series.label) for series in chart.series), default=0)
        columns = 2 if longest <= LEGEND_TWO_COLUMN_CHARS else 1
        rows = -(-len(chart.series) // columns)
        width, height = FIGURE_INCHES
        height += LEGEND_ROW_INCHES * max(0, rows - LEGEND_ROWS_INCLUDED)  # the plot keeps its size
        figure = Figure(figsize=(width, height), layout="constrained")
        FigureCanvasSVG(figure)
        axes = figure.add_subplot()
        if chart.kind is ChartKind.TIME_LINES:
            _time_lines(axes, chart)
        elif chart.kind is ChartKind.TIME_BARS:
            _time_bars(axes, chart)
        else:
            _category_bars(axes, chart)
        if chart.kind is not ChartKind.CATEGORY_BARS:
            _time_axis(axes, chart)
        counts = axes.xaxis if chart.kind is ChartKind.CATEGORY_BARS else axes.yaxis
        counts.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel(chart.x_label)
        axes.set_ylabel(chart.y_label)
        axes.grid(axis="y" if chart.kind is not ChartKind.CATEGORY_BARS else "x", alpha=0.3)
        figure.legend(loc="outside lower center", ncols=columns, frameon=False, fontsize=9)
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None}, facecolor="white")
    return buffer.getvalue()


def _time_axis(axes: Axes, chart: ChartData) -> None:
    """Evenly spaced ticks labelled with UTC clock times."""
    moments = [x for series in chart.series for x in _seconds(series.xs)]
    if not moments:
        return
    low, high = min(moments), max(moments)
    if chart.kind is ChartKind.TIME_BARS:
        high += chart.bar_seconds
    if chart.span is not None:
        low, high = _seconds(chart.span)
        axes.set_xlim(low, high)
    steps = max(1, TIME_TICKS - 1)
    ticks = [low + (high - low) * i / steps for i in range(TIME_TICKS)] if high > low else [low]
    labelled: dict[str, float] = {}
    form = "%m-%d %H:%M" if high - low > SECONDS_PER_DAY else "%H:%M:%S"
    for tick in ticks:
        labelled.setdefault(datetime.fromtimestamp(tick, UTC).strftime(form), tick)
    axes.set_xticks(list(labelled.values()), list(labelled))
    axes.tick_params(axis="x", labelrotation=30)


def _with_title(svg: str, chart: ChartData) -> str:
    """Give the root element a role, a `<title>` and a `<desc>` (the text alternative)."""
    match = _SVG_OPEN.search(svg)
    if match is None:
        return svg
    opening = match.group(0)
    labelled = opening[:-1] + f' role="img" aria-labelledby="{chart.slug}-title {chart.slug}-desc">'
    meta = (
        f'<title id="{chart.slug}-title">{escape(chart.title)}</title>'
        f'<desc id="{chart.slug}-desc">{escape(chart.alt)}</desc>'
    )
    return svg[: match.start()] + labelled + meta + svg[match.end() :]


def chart_svg(chart: ChartData) -> str:
    """The chart as a standalone SVG document (what charts/<slug>.svg holds)."""
    return _with_title(_figure_svg(chart), chart)


def inline_svg(svg: str) -> str:
    """An SVG document as an element to embed in HTML: no XML prolog, no doctype."""
    match = _SVG_OPEN.search(svg)
    return svg[match.start() :] if match else svg
