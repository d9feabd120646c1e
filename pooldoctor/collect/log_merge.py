"""Merge the scans of consecutive byte ranges of one file into the scan of the whole file."""

from __future__ import annotations

from collections import deque
from datetime import datetime

from pooldoctor.collect.log_scan import (
    FIRST_EXAMPLES,
    LAST_EXAMPLES,
    MAX_MINUTES_PER_EVENT,
    EventTally,
    FileScan,
)


def merge_scans(into: FileScan, later: FileScan) -> None:
    """Fold `later` (the scan of the range right after `into`'s) into `into`."""
    into.lines += later.lines
    into.timestamped += later.timestamped
    into.first = _earliest(into.first, later.first)
    into.last = _latest(into.last, later.last)
    if into.first_line is None:
        into.first_line = later.first_line
    into.flavors.update(later.flavors)
    into.undecodable += later.undecodable
    into.bad_stamps += later.bad_stamps
    if into.bad_stamp_line is None:
        into.bad_stamp_line = later.bad_stamp_line
    into.skipped_lines += later.skipped_lines
    into.skipped_events += later.skipped_events
    into.consumed = later.consumed
    into.reader.ambiguous_zones |= later.reader.ambiguous_zones
    for event, tally in later.tallies.items():
        if event in into.tallies:
            merge_tallies(into.tallies[event], tally)
        else:
            into.tallies[event] = tally


def merge_tallies(into: EventTally, later: EventTally) -> None:
    """Fold `later`'s occurrences (all after `into`'s) into `into`, examples as if one tally."""
    total = into.count + later.count
    head = into.first_examples
    if len(head) < FIRST_EXAMPLES:  # then `into` holds all its lines in first_examples
        head = (head + later.first_examples)[:FIRST_EXAMPLES]
    ends = (_last_known(into) + _last_known(later))[-LAST_EXAMPLES:]
    keep = min(LAST_EXAMPLES, max(0, total - FIRST_EXAMPLES))
    into.first_examples = head
    into.last_lines = deque(ends[len(ends) - keep :], maxlen=LAST_EXAMPLES)
    into.count = total
    into.first = _earliest(into.first, later.first)
    into.last = _latest(into.last, later.last)
    for minute, count in later.per_minute.items():
        if minute in into.per_minute or len(into.per_minute) < MAX_MINUTES_PER_EVENT:
            into.per_minute[minute] = into.per_minute.get(minute, 0) + count
        else:
            into.minutes_dropped = True
    into.minutes_dropped |= later.minutes_dropped


def _last_known(tally: EventTally) -> list[bytes | str]:
    """A tally's last min(LAST_EXAMPLES, count) lines, oldest first."""
    return [*tally.first_examples, *tally.last_lines][-LAST_EXAMPLES:]


def _earliest(one: datetime | None, other: datetime | None) -> datetime | None:
    if one is None or other is None:
        return other if one is None else one
    return min(one, other)


def _latest(one: datetime | None, other: datetime | None) -> datetime | None:
    if one is None or other is None:
        return other if one is None else one
    return max(one, other)
