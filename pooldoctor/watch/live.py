"""The watch loop: sample a round, diagnose the recent window, redraw, wait for keys or time."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.live import Live

from pooldoctor.atomic import write_atomic
from pooldoctor.collect.once import ReadOnce, read_once
from pooldoctor.collect.options import SourceOptions
from pooldoctor.collect.sampling import RoundReport, Sampler, utc_now
from pooldoctor.diagnosis import diagnose
from pooldoctor.evidence import Evidence, SourceState, SourceStatus, evidence_to_json
from pooldoctor.findings import Status
from pooldoctor.interrupts import INTERRUPTS
from pooldoctor.watch.keys import KeyReader
from pooldoctor.watch.logtail import LogTail
from pooldoctor.watch.model import SortKey, WatchView, build_view
from pooldoctor.watch.rate import RATE_WINDOW_SECONDS
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
    config_only = read_once(replace(options, logs=(), prometheus=None), utc_now)
    sampler = Sampler(options, keep_rounds=KEEP_ROUNDS, retry_refused=True)
    interactive = console.is_terminal
    live = Live(console=console, auto_refresh=False) if interactive else None
    try:
        sampler.open()
        with KeyReader(enabled=interactive) as keys, live or nullcontext():
            screen = _Screen(console, live, settings.interval)
            tail = LogTail(options.logs)
            rounds = _Rounds(sampler, config_only, settings, screen, keys, tail, outcome)
            sampler.run(None, rounds.show, rounds.wait_until)
    except INTERRUPTS:
        pass  # Ctrl-C and SIGTERM end a watch like `q`: the record is still written
    finally:
        sampler.close()
        outcome.rounds = sampler.rounds
        if settings.record is not None:
            once = _read_for_record(options, config_only)
            _write_record(sampler.evidence(once), settings.record, outcome)
    return outcome


def _read_for_record(options: SourceOptions, config_only: ReadOnce) -> ReadOnce:
    """Prometheus history, logs and config for the record. Reading a big log takes a while, so
    the user is told, and Ctrl-C again records what was read so far instead of nothing."""
    so_far = ReadOnce()

    def note(phase: str, read: ReadOnce) -> None:
        nonlocal so_far
        so_far = read
        if phase == "reading logs":
            print(
                "reading --log for the record (Ctrl-C again to record without it)", file=sys.stderr
            )

    try:
        return read_once(options, utc_now, note)
    except INTERRUPTS:
        at = utc_now()
        read_logs = {log.path for log in so_far.logs}
        unread = tuple(
            SourceStatus(path, "log", SourceState.SKIPPED, "not read: interrupted", at, at)
            for path in options.logs
            if path not in read_logs
        )
        return replace(
            so_far,
            config=config_only.config,
            statuses=(*so_far.statuses, *unread, *config_only.statuses),
        )


class _Rounds:
    """Watch's part of each sampling round: diagnose the recent window, draw it, take keys."""

    def __init__(
        self,
        sampler: Sampler,
        once: ReadOnce,
        settings: WatchSettings,
        screen: _Screen,
        keys: KeyReader,
        tail: LogTail,
        outcome: WatchOutcome,
    ) -> None:
        self.sampler = sampler
        self.once = once
        self.screen = screen
        self.keys = keys
        self.tail = tail
        self.outcome = outcome
        self.deadline = None if settings.duration is None else time.monotonic() + settings.duration
        self.sort, self.paused = SortKey.AGE, False
        # Timeout rates span a minute however few rounds the view diagnoses: one round more than
        # a minute holds, and one more so that a late round still reaches past the minute.
        self.rate_rounds = math.ceil(RATE_WINDOW_SECONDS / settings.interval) + 2
        self._redraw: Callable[[], WatchView] | None = None

    def show(self, report: RoundReport) -> None:
        """Draw the round just sampled (the report's per-source outcomes are in the view)."""
        self.tail.poll(time.monotonic())
        log_rates = self.tail.rates(time.monotonic())
        evidence = self.sampler.evidence(self.once, last_rounds=VIEW_ROUNDS)
        rate_pools = self.sampler.pools(self.rate_rounds)
        diagnosis = diagnose(evidence)
        self.outcome.status = diagnosis.status

        def view() -> WatchView:
            return build_view(evidence, diagnosis, report.number, self.sort, log_rates, rate_pools)

        self._redraw = view
        self.screen.show(view(), self.sort, self.paused, True)

    def wait_until(self, next_round: float) -> bool:
        """Take keys until the next round is due (or forever while paused); False to stop."""
        deadline = self.deadline
        while self.paused or time.monotonic() < next_round:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return False
            until = min(now + KEY_POLL_SECONDS, next_round if not self.paused else math.inf)
            if deadline is not None:
                until = min(until, deadline)
            key = self.keys.wait(until - now)
            if key == "q":
                return False
            if key in ("s", "p") and self._redraw is not None:
                self.sort = self.sort.next() if key == "s" else self.sort
                self.paused = not self.paused if key == "p" else self.paused
                self.screen.show(self._redraw(), self.sort, self.paused, False)
        return deadline is None or time.monotonic() < deadline


def _write_record(evidence: Evidence, path: Path, outcome: WatchOutcome) -> None:
    try:
        write_atomic(path, evidence_to_json(evidence))
    except OSError as exc:
        outcome.record_error = f"cannot write {path}: {exc.strerror or exc}"
    else:
        outcome.record = path
