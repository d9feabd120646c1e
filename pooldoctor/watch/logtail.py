"""Pool timeouts per minute from the lines appended to the app's logs while a watch runs."""

from __future__ import annotations

import os
from collections import Counter, deque
from datetime import UTC, datetime

from pooldoctor.collect.logs.catalog import RULES
from pooldoctor.collect.logs.reader import LONG_LINE_KEEP_BYTES
from pooldoctor.collect.logs.timestamps import TimestampReader
from pooldoctor.evidence import LogEvent
from pooldoctor.watch.loginstance import LogRates, named_instance
from pooldoctor.watch.rate import RATE_WINDOW_SECONDS, Rate

READ_LIMIT_BYTES = 64 * 1024 * 1024  # per file and round; a log growing faster is skipped ahead
TIMEOUT_EVENTS = (LogEvent.POOL_TIMEOUT, LogEvent.PSYCOPG_POOL_TIMEOUT)
TIMEOUT_LITERALS = tuple(
    literal for rule in RULES if rule.event in TIMEOUT_EVENTS for literal in rule.literals
)
CONTINUATION_STARTS = b" \t"


class LogTail:
    """Follows plain log files from their end; counts the pool-timeout lines each round adds,
    per instance their records name (a traceback's last line belongs to its record's first)."""

    def __init__(self, paths: tuple[str, ...]) -> None:
        self._offsets: dict[str, int] = {}
        self._files: dict[str, int] = {}  # inode followed: another one there is a rotation
        self._partial: dict[str, bytes] = {}
        self._record_instance: dict[str, str | None] = {}  # of the record open at the end
        self._started: float | None = None
        self._seen: deque[tuple[float, Counter[str | None]]] = deque()
        self._named: set[str] = set()
        # Only whether a line starts with a timestamp matters here, not which moment it names.
        self._stamps = TimestampReader(log_tz=UTC, reference=datetime.now(UTC))
        for path in paths:
            if path == "-" or path.endswith(".gz"):
                continue  # stdin and gzip cannot be followed
            try:
                status = os.stat(path)
            except OSError:
                continue  # the log source reports the error; the rate just stays unknown
            self._offsets[path], self._files[path] = status.st_size, status.st_ino

    @property
    def following(self) -> bool:
        """Whether any log can be followed."""
        return bool(self._offsets)

    def poll(self, now: float) -> None:
        """Read what was appended since the last poll and count its timeout lines.

        The first poll only sets the baseline, as a counter's first sample does: lines logged
        before it are not spread over the fraction of a second since the watch started.
        """
        found: Counter[str | None] = Counter()
        for path, offset in self._offsets.items():
            found.update(self._read_new(path, offset))
        if self._started is None:
            self._started = now
            return
        self._named.update(name for name in found if name is not None)
        self._seen.append((now, found))
        while self._seen and now - self._seen[0][0] > RATE_WINDOW_SECONDS:
            self._seen.popleft()

    def _read_new(self, path: str, offset: int) -> Counter[str | None]:
        try:
            with open(path, "rb") as handle:
                status = os.fstat(handle.fileno())
                size = status.st_size
                if size < offset or status.st_ino != self._files[path]:
                    # rotated (another file by that name) or truncated: follow it from its start
                    offset, self._partial[path] = 0, b""
                    self._record_instance[path] = None
                if size - offset > READ_LIMIT_BYTES:
                    offset, self._partial[path] = size - READ_LIMIT_BYTES, b""
                    self._record_instance[path] = None
                handle.seek(offset)
                data = self._partial.get(path, b"") + handle.read(size - offset)
        except OSError:
            return Counter()
        self._offsets[path], self._files[path] = size, status.st_ino
        complete = data.rfind(b"\n") + 1
        self._partial[path] = data[complete : complete + LONG_LINE_KEEP_BYTES]  # a line's start
        return self._count(path, data[:complete].splitlines())

    def _count(self, path: str, lines: list[bytes]) -> Counter[str | None]:
        counts: Counter[str | None] = Counter()
        instance = self._record_instance.get(path)
        for line in lines:
            if line[:1] not in CONTINUATION_STARTS and self._stamps.read(line, flavor=False):
                instance = named_instance(line)
            if any(literal in line for literal in TIMEOUT_LITERALS):
                counts[instance or named_instance(line)] += 1
        self._record_instance[path] = instance
        return counts

    def rates(self, now: float) -> LogRates | None:
        """Timeout lines counted over about the last minute (less in the first one), from the
        second poll on."""
        if not self._offsets or self._started is None or not self._seen:
            return None
        watched = now - self._started
        elapsed = min(watched, RATE_WINDOW_SECONDS)
        if elapsed <= 0:
            return None
        total: Counter[str | None] = Counter()
        for _, counts in self._seen:
            total.update(counts)
        span = Rate(total.total(), elapsed, full_minute=watched >= RATE_WINDOW_SECONDS)
        return LogRates(dict(total), frozenset(self._named), span)
