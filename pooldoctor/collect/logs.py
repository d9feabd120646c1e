"""Log collector (placeholder until implemented)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo

from pooldoctor.evidence import LogFileEvidence


def collect_logs(
    paths: Sequence[str], *, log_tz: tzinfo, since: datetime | None, until: datetime | None
) -> tuple[LogFileEvidence, ...]:
    raise NotImplementedError
