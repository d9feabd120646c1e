"""Pool timeouts per minute from the lines appended to the app's logs while a watch runs."""

from __future__ import annotations

import os
from collections import deque

from pooldoctor.collect.logs.catalog import RULES
from pooldoctor.evidence import LogEvent

RATE_WINDOW_SECONDS = 60.0
READ_LIMIT_BYTES = 64 * 1024 * 1024  # per file and round; a log growing faster is skipped ahead
TIMEOUT_EVENTS = (LogEvent.POOL_TIMEOUT, LogEvent.PSYCOPG_POOL_TIMEOUT)
TIMEOUT_LITERALS = tuple(
    literal for rule in RULES if rule.event in TIMEOUT_EVENTS for literal in rule.literals
)


class LogTail:
    """Follows plain log files from their end; counts the pool-timeout lines each round adds."""

    def __init__(self, paths: tuple[str, ...]) -> None:
        self._offsets: dict[str, int] = {}
        self._partial: dict[str, bytes] = {}
        self._started: float | None = None
        self._seen: deque[tuple[float, int]] = deque()
        for path in paths:
            if path == "-" or path.endswith(".gz"):
                continue  # stdin and gzip cannot be followed
            try:
                self._offsets[path] = os.path.getsize(path)
            except OSError:
                continue  # the log source reports the error; the rate just stays unknown

    @property
    def following(self) -> bool:
        """Whether any log can be followed."""
        return bool(self._offsets)

    def poll(self, now: float) -> None:
        """Read what was appended since the last poll and count its timeout lines.

        The first poll only sets the baseline, as a counter's first sample does: lines logged
        before it are not spread over the fraction of a second since the watch started.
        """
        found = 0
        for path, offset in self._offsets.items():
            found += self._read_new(path, offset)
        if self._started is None:
            self._started = now
            return
        self._seen.append((now, found))
        while self._seen and now - self._seen[0][0] > RATE_WINDOW_SECONDS:
            self._seen.popleft()

    def _read_new(self, path: str, offset: int) -> int:
        try:
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size < offset:  # rotated or truncated: follow the new file from its start
                    offset, self._partial[path] = 0, b""
                if size - offset > READ_LIMIT_BYTES:
                    offset, self._partial[path] = size - READ_LIMIT_BYTES, b""
                handle.seek(offset)
                data = self._partial.get(path, b"") + handle.read(size - offset)
        except OSError:
            return 0
        self._offsets[path] = size
        complete = data.rfind(b"\n") + 1
        self._partial[path] = data[complete:]
        return sum(
            1
            for line in data[:complete].splitlines()
            if any(literal in line for literal in TIMEOUT_LITERALS)
        )

    def per_minute(self, now: float) -> float | None:
        """Timeout lines per minute over about the last minute, from the second poll on."""
        if not self._offsets or self._started is None or not self._seen:
            return None
        elapsed = min(now - self._started, RATE_WINDOW_SECONDS)
        if elapsed <= 0:
            return None
        return sum(count for _, count in self._seen) * 60.0 / elapsed
