"""The watch loop: sample a round, diagnose the recent window, redraw, wait for keys or time."""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.live import Live

from pooldoctor.atomic import write_atomic
from pooldoctor.collect.options import SourceOptions
from pooldoctor.collect.session import LiveSampler, ReadOnce, read_once
from pooldoctor.diagnosis import diagnose
from pooldoctor.evidence import Evidence, evidence_to_json
from pooldoctor.findings import Status
from pooldoctor.interrupts import INTERRUPTS
from pooldoctor.watch.keys import KeyReader
from pooldoctor.watch.model import SortKey, WatchView, build_view
from pooldoctor.watch.render import render_view, status_line

# The view diagnoses the latest rounds only, so each refresh costs the same however long it runs.
VIEW_ROUNDS = 30
# The record keeps the latest rounds: an hour at the default 2 s interval.
KEEP_ROUNDS = 1800
KEY_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class WatchSettings:
    """How long and how often to watch, and where to record."""

    interval: float = 2.0
    duration: float | None = None
    record: Path | None = None


@dataclass
class WatchOutcome:
    """How a watch ended: rounds taken, the last status, and the record written (if any)."""

    rounds: int = 0
    status: Status = Status.UNKNOWN
    record: Path | None = None
    record_error: str | None = None


class _Screen:
    """Where rounds go: a rich Live region on a terminal, else one plain line each."""

    def __init__(self, console: Console, live: Live | None, interval: float) -> None:
        self.console = console
        self.live = live
        self.interval = interval

    def show(self, view: WatchView, sort: SortKey, paused: bool, new_round: bool) -> None:
        if self.live is not None:
            self.live.update(render_view(view, sort, paused, self.interval), refresh=True)
        elif new_round:
            print(status_line(view), flush=True)


def run_watch(options: SourceOptions, settings: WatchSettings, console: Console) -> WatchOutcome:
    """Watch until --duration passes, `q`, Ctrl-C or SIGTERM; then write the record atomically."""
    outcome = WatchOutcome()
    # Config once for the live view; Prometheus history and logs once, for the record.
    config_only = read_once(replace(options, logs=(), prometheus=None))
    sampler = LiveSampler(options, keep_rounds=KEEP_ROUNDS)
    interactive = console.is_terminal
    live = Live(console=console, auto_refresh=False) if interactive else None
    try:
        with KeyReader(enabled=interactive) as keys, live or nullcontext():
            screen = _Screen(console, live, settings.interval)
            _loop(sampler, config_only, settings, screen, keys, outcome)
    except INTERRUPTS:
        pass  # Ctrl-C and SIGTERM end a watch like `q`: the record is still written
    finally:
        sampler.close()
        outcome.rounds = sampler.rounds
        if settings.record is not None:
            _write_record(sampler.evidence(read_once(options)), settings.record, outcome)
    return outcome


def _loop(
    sampler: LiveSampler,
    once: ReadOnce,
    settings: WatchSettings,
    screen: _Screen,
    keys: KeyReader,
    outcome: WatchOutcome,
) -> None:
    deadline = None if settings.duration is None else time.monotonic() + settings.duration
    sort, paused = SortKey.AGE, False
    while True:
        round_started = time.monotonic()
        sampler.sample()
        evidence = sampler.evidence(once, last_rounds=VIEW_ROUNDS)
        diagnosis = diagnose(evidence)
        outcome.status = diagnosis.status
        screen.show(build_view(evidence, diagnosis, sampler.rounds, sort), sort, paused, True)
        next_round = round_started + settings.interval
        while paused or time.monotonic() < next_round:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return
            until = min(now + KEY_POLL_SECONDS, next_round if not paused else math.inf)
            if deadline is not None:
                until = min(until, deadline)
            key = keys.wait(until - now)
            if key == "q":
                return
            if key in ("s", "p"):
                sort = sort.next() if key == "s" else sort
                paused = not paused if key == "p" else paused
                view = build_view(evidence, diagnosis, sampler.rounds, sort)
                screen.show(view, sort, paused, False)
        if deadline is not None and time.monotonic() >= deadline:
            return


def _write_record(evidence: Evidence, path: Path, outcome: WatchOutcome) -> None:
    try:
        write_atomic(path, evidence_to_json(evidence))
    except OSError as exc:
        outcome.record_error = f"cannot write {path}: {exc.strerror or exc}"
    else:
        outcome.record = path
