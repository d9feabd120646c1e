"""What pg_stat_activity hid from pooldoctor's role, and the grant that would show it."""

from __future__ import annotations

from pooldoctor.readings import Readings
from pooldoctor.readings.visibility import GRANT_ROLE
from pooldoctor.readings.visibility import hidden as hidden_rows


def _quoted(role: str) -> str:
    return '"' + role.replace('"', '""') + '"'


def visibility_caveats(readings: Readings) -> tuple[str, ...]:
    """Report lines when rows were hidden: how many, whose, why it matters, what to grant."""
    postgres = readings.evidence.postgres
    hidden = readings.visibility.hidden_sessions
    if postgres is None or hidden == 0:
        return ()
    role = postgres.current_user or "pooldoctor's role"
    latest_sample = readings.activity.backends if readings.activity is not None else ()
    hidden_now = len(hidden_rows(latest_sample))
    roles = ", ".join(postgres.hidden_roles) or "unknown roles"
    return (
        f"Role {role} may not read other roles' activity (no pg_read_all_stats): up to {hidden} "
        f"session(s) per sample of {roles} showed no state, query or backend type "
        f"({hidden_now} of {len(latest_sample)} in the last sample).",
        "Counts by state (idle in transaction, leaked, long-running), the oldest stuck "
        "transaction and blocker chains in this report are lower bounds, not complete: a hidden "
        "session can be the idle-in-transaction holder or the root blocker. Slot totals do "
        "count the hidden sessions, without their state.",
        f"To see every session, rerun with a role that has it: GRANT {GRANT_ROLE} TO "
        f"{_quoted(role) if postgres.current_user else role};",
    )


def visibility_sentence(readings: Readings) -> str:
    """One sentence for the summary, empty when nothing was hidden."""
    hidden = readings.visibility.hidden_sessions
    if hidden == 0:
        return ""
    return (
        f"PostgreSQL hid {hidden} session(s) from pooldoctor's role (no {GRANT_ROLE}): counts by "
        "state, the oldest stuck transaction and blocker chains are lower bounds; see Visibility."
    )
