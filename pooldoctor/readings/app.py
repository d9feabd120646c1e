"""The app's identity in pg_stat_activity and the other clients around it."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pooldoctor.evidence import ActivitySample, Backend, Evidence, PostgresEvidence
from pooldoctor.readings.thresholds import MAX_LISTED, MIN_APP_BACKENDS

SELF_APP = "pooldoctor"
MAINTENANCE_APPS = (
    "pg_dump",
    "pg_dumpall",
    "pg_basebackup",
    "pg_restore",
    "pg_rewind",
    "pg_receivewal",
    "pg_repack",
    "psql",
    "pgadmin",
    "vacuumdb",
    "reindexdb",
    "autovacuum",
    "walreceiver",
    "walsender",
)
CLIENT_BACKEND_TYPES = (None, "client backend")
IDLE = "idle"
IDLE_IN_TRANSACTION = ("idle in transaction", "idle in transaction (aborted)")
ACTIVE = "active"
# "billing-api-2", "worker_3", "web.7": one process of a fleet numbered by instance.
_INSTANCE_NUMBER = re.compile(r"[-_.:]\d+$")


def fleet_name(application_name: str) -> str:
    """The application_name without a trailing instance number: 'billing-api-2' -> 'billing-api'."""
    return _INSTANCE_NUMBER.sub("", application_name)


def is_client(backend: Backend) -> bool:
    """A client session, not a background worker (autovacuum, walsender, ...)."""
    return backend.backend_type in CLIENT_BACKEND_TYPES


def client_backends(sample: ActivitySample) -> list[Backend]:
    """Client sessions of a snapshot (no background workers)."""
    return [b for b in sample.backends if b.backend_type in CLIENT_BACKEND_TYPES]


def is_self(backend: Backend) -> bool:
    return (backend.application_name or "").lower().startswith(SELF_APP)


def is_maintenance(backend: Backend) -> bool:
    name = (backend.application_name or "").lower()
    return any(name.startswith(tool) for tool in MAINTENANCE_APPS)


@dataclass(frozen=True)
class AppIdentity:
    """How the app's own backends are recognised in pg_stat_activity, and why."""

    application_name: str | None
    usename: str | None
    backends_seen: int
    reason: str
    role: str | None = None  # the role most of the app's backends log in as

    @property
    def label(self) -> str:
        if self.application_name:
            return f"application '{self.application_name}'"
        return f"unnamed application of user '{self.usename}'"

    @property
    def short(self) -> str:
        return self.application_name or self.usename or "app"

    def matches(self, backend: Backend) -> bool:
        if backend.backend_type not in CLIENT_BACKEND_TYPES or is_self(backend):
            return False
        if self.application_name:
            return backend.application_name == self.application_name
        return not backend.application_name and backend.usename == self.usename

    def same_fleet(self, backend: Backend) -> bool:
        """Another numbered process of the app: 'api-2' beside 'api-1', same role."""
        name = backend.application_name
        if not self.application_name or not name or name == self.application_name:
            return False
        stem = fleet_name(self.application_name)
        return (
            stem != self.application_name
            and fleet_name(name) == stem
            and (self.role is None or backend.usename == self.role)
        )

    def as_evidence(self) -> dict[str, Any]:
        return {
            "application_name": self.application_name,
            "usename": self.usename,
            "role": self.role,
            "chosen_because": self.reason,
        }


def identify_app(pg: PostgresEvidence | None, named: str | None = None) -> AppIdentity | None:
    """The app = the application_name its config names (`named`) when it has backends; else the
    application_name (else role) with the most client backends over the samples, excluding
    pooldoctor itself and maintenance tools."""
    if pg is None or not pg.samples:
        return None
    if named:
        own = [
            b for s in pg.samples for b in client_backends(s)
            if b.application_name == named and not is_self(b)
        ]  # fmt: skip
        if own:
            role = Counter(b.usename or "" for b in own).most_common(1)[0][0] or None
            reason = "the application_name its config sets"
            return AppIdentity(named, None, len(own), reason, role)
    tally: Counter[tuple[str, str]] = Counter()
    roles: dict[tuple[str, str], Counter[str]] = {}
    for sample in pg.samples:
        for backend in client_backends(sample):
            if is_self(backend) or is_maintenance(backend):
                continue
            name = backend.application_name or ""
            key = (name, "" if name else backend.usename or "")
            tally[key] += 1
            roles.setdefault(key, Counter())[backend.usename or ""] += 1
    if not tally:
        return None
    (name, user), seen = min(tally.items(), key=lambda item: (-item[1], item[0]))
    per_sample = seen / len(pg.samples)
    reason = (
        f"most client backends ({per_sample:.0f} per sample), excluding pooldoctor and "
        f"maintenance tools ({', '.join(MAINTENANCE_APPS[:4])}, ...)"
    )
    role = roles[(name, user)].most_common(1)[0][0] or None
    return AppIdentity(name or None, user or None, seen, reason, role)


def configured_app_name(evidence: Evidence) -> str | None:
    return evidence.config.application_name if evidence.config is not None else None


def enough_app_backends(count: int, capacity: int | None) -> bool:
    """Enough app backends to judge: MIN_APP_BACKENDS, or a whole (small) pool's worth."""
    needed = MIN_APP_BACKENDS if not capacity else min(MIN_APP_BACKENDS, capacity)
    return count >= max(1, needed)


def app_backends(sample: ActivitySample, app: AppIdentity) -> list[Backend]:
    return [b for b in sample.backends if app.matches(b)]


def other_clients(sample: ActivitySample, app: AppIdentity | None) -> list[Backend]:
    """Client backends that are neither the app (nor its numbered processes) nor pooldoctor."""
    return [
        b
        for b in client_backends(sample)
        if not is_self(b) and (app is None or not (app.matches(b) or app.same_fleet(b)))
    ]


def describe_sessions(backends: Iterable[Backend]) -> list[dict[str, Any]]:
    """Group sessions by (application_name, role): counts and pids, for a finding's evidence."""
    groups: dict[tuple[str, str], list[int]] = {}
    for backend in backends:
        key = (backend.application_name or "", backend.usename or "")
        groups.setdefault(key, []).append(backend.pid)
    return [
        {"application_name": name, "usename": user, "count": len(pids), "pids": pids[:MAX_LISTED]}
        for (name, user), pids in sorted(groups.items(), key=lambda item: -len(item[1]))
    ]
