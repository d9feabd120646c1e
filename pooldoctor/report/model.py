"""The report model: one structure that the JSON, markdown, HTML and terminal renderers share."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pooldoctor.findings import Finding, Status

REPORT_SCHEMA = "pooldoctor.report/1"


class EntryKind(StrEnum):
    """What a timeline entry was derived from (for styling and for choosing what to drop)."""

    LOG = "log"
    SERVER = "server"
    POOL = "pool"
    POSTGRES = "postgres"
    HOLDER = "holder"
    SOURCE = "source"
    COLLECTION = "collection"
    DETECTION = "detection"


@dataclass(frozen=True)
class TimelineEntry:
    """One moment of the incident; `until` is set when the entry summarises a span."""

    at: datetime
    source: str
    event: str
    kind: EntryKind
    until: datetime | None = None
    inferred: bool = False
    priority: int = 1  # 0 = always kept; higher values are dropped first when capping


@dataclass(frozen=True)
class KeyTime:
    """A headline moment (first error, peak, oldest stuck work, detection) and its source."""

    name: str
    label: str
    at: datetime | None
    inferred: bool
    basis: str
    count: int | None = None
    complete: bool = True  # False: sessions hidden from pooldoctor's role may be older


@dataclass(frozen=True)
class ReportFinding(Finding):
    """A finding as presented: the diagnosis' finding (evidence made JSON-plain) plus its
    runbook's title, link, first step and prevention."""

    runbook_title: str | None = None
    runbook_url: str | None = None
    runbook_first_step: str | None = None  # shown with `pooldoctor runbooks show` when no URL
    prevention: tuple[str, ...] = ()  # the runbook's Prevention list, for the action items
    explains: tuple[str, ...] = ()  # ids of symptom findings folded into this cause

    @property
    def runbook_command(self) -> str:
        return f"pooldoctor runbooks show {self.runbook}"


@dataclass(frozen=True)
class SourceRow:
    """One source's collection outcome."""

    name: str
    kind: str
    status: str
    detail: str


@dataclass(frozen=True)
class Window:
    """The requested time window and the span the evidence actually covers."""

    since: datetime | None
    until: datetime | None
    first_evidence: datetime | None
    last_evidence: datetime | None


@dataclass(frozen=True)
class Environment:
    """What the diagnosis ran against: versions, server settings, the app's pool configuration."""

    pooldoctor_version: str
    postgres_version: str | None
    postgres_target: str | None
    postgres_user: str | None
    settings: dict[str, str] = field(default_factory=dict)
    pool_config: dict[str, Any] = field(default_factory=dict)
    pool_instances: tuple[str, ...] = ()
    log_files: tuple[str, ...] = ()


class ChartKind(StrEnum):
    """How a chart is drawn."""

    TIME_LINES = "time-lines"  # x is time; each series a line (capacity a dashed step)
    TIME_BARS = "time-bars"  # x is a UTC minute; series stacked as bars
    CATEGORY_BARS = "category-bars"  # y is a category; series stacked as horizontal bars


@dataclass(frozen=True)
class Series:
    """One plotted series; `xs` are datetimes for time charts, category names otherwise."""

    key: str  # stable id, written as the SVG group id
    label: str
    xs: tuple[datetime | str, ...]
    ys: tuple[float, ...]
    dashed: bool = False


@dataclass(frozen=True)
class Mark:
    """A vertical marker on a time chart (an incident key time)."""

    label: str
    at: datetime


@dataclass(frozen=True)
class ChartData:
    """One chart: what it plots, its title and a text alternative for readers who cannot see it."""

    slug: str  # file name under charts/, without .svg
    title: str
    alt: str
    kind: ChartKind
    x_label: str
    y_label: str
    series: tuple[Series, ...]
    marks: tuple[Mark, ...] = ()
    stacked: bool = True  # False: category bars side by side (series count the same things)
    span: tuple[datetime, datetime] | None = None  # time axis range when wider than the data
    bar_seconds: float = 60.0  # TIME_BARS: how much time one bar counts


@dataclass(frozen=True)
class Lead:
    """Four lines a responder reads first and pastes into the incident channel."""

    what: str
    where: str
    impact: str
    do_now: str


@dataclass(frozen=True)
class Postmortem:
    """Sections after the findings, in the order of the Google SRE and PagerDuty templates."""

    impact: str
    detection: str
    root_cause: str
    action_items: tuple[str, ...]


@dataclass(frozen=True)
class Report:
    """Everything a renderer needs; built once by `build_report`, never mutated."""

    status: Status
    generated_at: datetime
    summary: str
    findings: tuple[ReportFinding, ...]
    timeline: tuple[TimelineEntry, ...]
    timeline_omitted: int
    key_times: tuple[KeyTime, ...]
    sources: tuple[SourceRow, ...]
    window: Window
    environment: Environment
    unavailable: tuple[str, ...] = ()
    visibility: tuple[str, ...] = ()  # what pg_stat_activity hid, and the grant that shows it
    charts: tuple[ChartData, ...] = ()
    lead: Lead | None = None
    postmortem: Postmortem | None = None
    # findings[0]'s look-alikes and why each lost; close_call when the window cannot decide
    differential: dict[str, Any] | None = None
