"""Sessions pg_stat_activity hid from pooldoctor's role, so counts built on it are lower bounds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pooldoctor.evidence import Backend, PostgresEvidence
from pooldoctor.readings.app import AppIdentity, client_backends

GRANT_ROLE = "pg_monitor"  # includes pg_read_all_stats, which unhides other roles' sessions


def hidden(backends: Iterable[Backend]) -> list[Backend]:
    """Sessions whose state, times and query this role may not read (role and name still show)."""
    return [b for b in backends if b.query_hidden]


@dataclass(frozen=True)
class Visibility:
    """The most client sessions hidden in one sample: all of them, and the app's own."""

    hidden_sessions: int
    hidden_app_sessions: int

    def app_counts_note(self, app_label: str) -> str:
        """Why counts of the app's sessions by state are lower bounds; empty when they are not."""
        if not self.hidden_app_sessions:
            return ""
        return (
            f"these counts are lower bounds: {self.hidden_app_sessions} session(s) of {app_label} "
            f"were hidden from pooldoctor's role (no {GRANT_ROLE}), so their state is unknown"
        )

    def other_counts_note(self) -> str:
        """Why counts of other clients' sessions by state are lower bounds; empty when not."""
        others = self.hidden_sessions - self.hidden_app_sessions
        if others <= 0:
            return ""
        return (
            f"a lower bound: {others} other session(s) were hidden from pooldoctor's role (no "
            f"{GRANT_ROLE}), so their state is unknown"
        )

    def slot_note(self) -> str:
        """Hidden sessions still take slots and are counted; only their state is unknown."""
        if not self.hidden_sessions:
            return ""
        return (
            f"the total includes {self.hidden_sessions} session(s) hidden from pooldoctor's role "
            f"(no {GRANT_ROLE}): counted, but their state is unknown and a hidden parallel worker "
            "would be counted as a client"
        )


def read_visibility(pg: PostgresEvidence | None, app: AppIdentity | None) -> Visibility:
    """Hidden client sessions per sample, the app's among them (0 when not sampled)."""
    if pg is None:
        return Visibility(0, 0)
    total = 0
    of_app = 0
    for sample in pg.samples:
        rows = hidden(client_backends(sample))
        total = max(total, len(rows))
        if app is not None:
            of_app = max(of_app, sum(1 for b in rows if app.matches(b)))
    return Visibility(total, of_app)
