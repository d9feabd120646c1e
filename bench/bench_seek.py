"""A one-hour --since/--until window of a big multi-day log: seek vs full scan vs `grep -c -F`.

Generates, in a temporary directory removed afterwards, a chronological log of
POOLDOCTOR_SEEK_BENCH_MB MiB (default 5120) spread over DAYS days, from the same line mix as
bench_logs. Then, in one run against that file: collect_logs with the window (bisects to it),
the same window without seeking (reads the whole file), and grep -c -F with the classifier
literals over the whole file. Both scans must find the same events.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, timedelta
from pathlib import Path

from bench.bench_logs import START, _lines
from pooldoctor.collect.logs import collect_logs
from pooldoctor.collect.logs.catalog import classification_literals
from pooldoctor.collect.logs.seek import SEEK_MARGIN, Window, find_window
from pooldoctor.collect.logs.timestamps import TimestampReader
from pooldoctor.evidence import LogFileEvidence

DEFAULT_MB = 5120
DAYS = 3
AVERAGE_BURST_BYTES = 122  # of bench_logs' line mix, measured
# The window may cost its own bytes, the seek margins, and a few reads per probe.
TARGET_SLACK = 1.1  # uneven traffic: an hour may hold a little more than the average hour
MAX_PROBES_TARGET = 100
MIB = 1024 * 1024


def _hour_template(hour_bytes: int) -> bytes:
    """One hour (00:00 to 01:00 on START's day) of about `hour_bytes` of log lines."""
    rng = random.Random(20241205)
    bursts = max(1, hour_bytes // AVERAGE_BURST_BYTES)
    mean_step = 3600e6 / bursts
    moment = START
    end = START + timedelta(hours=1)
    lines: list[str] = []
    while True:
        moment += timedelta(microseconds=rng.uniform(0.2, 1.8) * mean_step)
        if moment >= end:
            break
        lines.extend(_lines(rng, moment))
    return ("\n".join(lines) + "\n").encode()


def _hour(template: bytes, hour: int) -> bytes:
    """The template restamped to `hour` hours after START (its three timestamp styles)."""
    moment = START + timedelta(hours=hour)
    iso = moment.strftime("%Y-%m-%d %H:").encode()
    access = moment.strftime("%d/%b/%Y:%H:").encode()
    return template.replace(b"2024-12-05 00:", iso).replace(b"05/Dec/2024:00:", access)


def generate(path: Path, megabytes: int) -> int:
    """Write the multi-day log; return how many hours it spans."""
    hours = DAYS * 24
    template = _hour_template(megabytes * 1024 * 1024 // hours)
    with path.open("wb") as out:
        for hour in range(hours):
            out.write(_hour(template, hour))
    return hours


def _timed(run: object) -> tuple[float, object]:
    assert callable(run)
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def _events(log: LogFileEvidence) -> list[tuple[object, ...]]:
    return sorted((e.event.value, e.count, e.first, e.last) for e in log.events)


def main() -> int:
    """Generate the file, time the three ways, print the figures and whether the target holds."""
    megabytes = int(os.environ.get("POOLDOCTOR_SEEK_BENCH_MB", DEFAULT_MB))
    grep = shutil.which("grep")
    if grep is None:
        print("grep not found; cannot measure the baseline")
        return 1
    with tempfile.TemporaryDirectory(prefix="pooldoctor-seek-") as directory:
        path = Path(directory) / "multi-day.log"
        print(f"generating {path} ({megabytes} MiB over {DAYS} days) ...", flush=True)
        generated, hours = _timed(lambda: generate(path, megabytes))
        assert isinstance(hours, int)
        size = path.stat().st_size
        size_mib = size / 1024 / 1024
        since = START + timedelta(hours=hours // 2, minutes=17)
        until = since + timedelta(hours=1)
        print(f"file: {size_mib:.0f} MiB, {hours} hours, generated in {generated:.1f}s; "
              f"window {since:%Y-%m-%d %H:%M} to {until:%H:%M} UTC")  # fmt: skip

        def window(seek: bool) -> LogFileEvidence:
            [log] = collect_logs([str(path)], log_tz=UTC, since=since, until=until, seek=seek)
            return log

        literals = classification_literals()
        args = [grep, "-c", "-F", *(f"-e{literal.decode()}" for literal in literals), str(path)]
        grep_seconds, _ = _timed(lambda: subprocess.run(args, capture_output=True, check=False))
        full_seconds, full = _timed(lambda: window(False))
        seek_seconds, seeked = _timed(lambda: window(True))
        assert isinstance(full, LogFileEvidence) and isinstance(seeked, LogFileEvidence)
        reader = TimestampReader(log_tz=UTC, reference=START + timedelta(days=DAYS))
        with path.open("rb") as handle:
            probe_seconds, found = _timed(lambda: find_window(handle, size, reader, since, until))
        same = _events(full) == _events(seeked)
    if not isinstance(found, Window):
        print("the window search gave up: the seek was not used")
        return 1
    scanned = (found.end or size) - found.start
    hour_bytes = size / hours
    allowed = hour_bytes * (1 + 2 * SEEK_MARGIN / timedelta(hours=1)) * TARGET_SLACK
    print(f"grep -c -F, {len(literals)} literals, whole file: {grep_seconds:.3f}s "
          f"({size_mib / grep_seconds:.0f} MiB/s)")  # fmt: skip
    full_rate = size_mib / full_seconds
    print(f"window, no seeking (reads it all): {full_seconds:.3f}s "
          f"({full_rate:.0f} MiB/s, {full_seconds / grep_seconds:.2f}x grep)")  # fmt: skip
    print(f"window with seeking:               {seek_seconds:.3f}s "
          f"({full_seconds / seek_seconds:.0f}x faster than without, "
          f"{grep_seconds / seek_seconds:.0f}x faster than grep)")  # fmt: skip
    print(f"  finding it: {probe_seconds * 1000:.1f} ms, {found.probes} probes; scanned "
          f"{scanned / MIB:.2f} MiB = the hour's {hour_bytes / MIB:.2f} MiB + "
          f"{(scanned - hour_bytes) / MIB:.2f} MiB of margins "
          f"(+-{SEEK_MARGIN.total_seconds() / 60:.0f} min)")  # fmt: skip
    met = same and scanned <= allowed and found.probes <= MAX_PROBES_TARGET
    print(f"target: scanned <= the window's bytes with its margins (+{TARGET_SLACK - 1:.0%}) and "
          f"<= {MAX_PROBES_TARGET} probes: {'met' if met else 'NOT met'}; "
          f"same events as without seeking: {same}")  # fmt: skip
    return 0 if met else 1
