"""What the single-connection probes (PostgreSQL, PgBouncer) share: closing once, safely."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import psycopg
from psycopg.rows import DictRow

EvidenceT = TypeVar("EvidenceT")
FINISH_WAIT_SECONDS = 2.0  # how long finish() waits for a running sample before giving up


class SingleConnectionProbe(Generic[EvidenceT]):
    """One connection, sampled under `_busy`; `finish()` closes it once and keeps the evidence."""

    finished_at: datetime | None
    _connection: psycopg.Connection[DictRow] | None
    _busy: threading.Lock
    _errors: list[str]
    _samples: list[Any]
    _evidence: EvidenceT | None

    def _failure_word(self) -> str | None:
        """Why the probe never connected, in a word; None once connected."""
        raise NotImplementedError

    def _usable(self) -> bool:
        """The connection is open and not broken."""
        raise NotImplementedError

    def _last_round_failed(self) -> bool:
        """The latest sampling round recorded an error."""
        raise NotImplementedError

    def round_outcome(self) -> str:
        """How the latest round went, in a word or a short reason (for progress lines)."""
        failure = self._failure_word()
        if failure is not None:
            return f"error: {failure} (not retried)"
        if not self._usable():
            return "error: connection lost"
        if self._errors and self._last_round_failed():
            return f"error: {self._errors[-1]}"
        return "ok"

    def _sample_round(self) -> None:
        """One round of sampling over the usable connection, `_busy` held."""
        raise NotImplementedError

    def sample(self) -> None:
        """One round (in a worker thread); skipped while the previous one still runs, nothing
        after a connection loss."""
        if not self._busy.acquire(blocking=False):
            self._errors.append("sample skipped: the previous sample is still running")
            return
        try:
            if self._usable():
                self._sample_round()
        finally:
            self._busy.release()

    def snapshot(self, last: int | None = None) -> EvidenceT:
        """Everything collected so far (only the `last` samples if given), connection kept open."""
        raise NotImplementedError

    def keep_last(self, count: int) -> None:
        """Forget all but the latest `count` samples and errors (bounded memory when watching)."""
        del self._samples[:-count]
        del self._errors[:-count]

    def _wait_idle(self, connection: psycopg.Connection[DictRow]) -> bool:
        """Acquire `_busy` once no sample runs (within FINISH_WAIT_SECONDS); False if one still
        does."""
        return self._busy.acquire(timeout=FINISH_WAIT_SECONDS)

    def finish(self) -> EvidenceT:
        """Close the connection (once) and return everything collected."""
        if self._evidence is None:
            self._close()
            self.finished_at = datetime.now(UTC)
            self._evidence = self.snapshot()
        return self._evidence

    def _close(self) -> None:
        connection = self._connection
        if connection is None or connection.closed:
            return
        if not self._wait_idle(connection):
            # Closing under a running query could free libpq state that thread still uses.
            self._errors.append("a sample did not finish; its connection closes at exit")
            return
        try:
            connection.close()
        finally:
            self._busy.release()
