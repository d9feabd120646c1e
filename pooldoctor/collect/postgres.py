"""PostgreSQL collector (placeholder until implemented)."""

from __future__ import annotations

from pooldoctor.evidence import PostgresEvidence, SourceStatus


class PostgresProbe:
    def sample(self) -> None:
        raise NotImplementedError

    def finish(self) -> PostgresEvidence:
        raise NotImplementedError

    def status(self) -> SourceStatus:
        raise NotImplementedError


def open_postgres(dsn: str, timeout: float) -> PostgresProbe:
    raise NotImplementedError
