"""The real pooldoctor capture of lab apps: pool status, pg_stat_activity, logs and env config."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from pathlib import Path

from pooldoctor.collect.options import SourceOptions
from pooldoctor.collect.session import capture
from pooldoctor.evidence import Evidence

CAPTURE_TIMEOUT_SECONDS = 3.0


def capture_lab(
    workdir: Path,
    env_text: str,
    dsn: str,
    pool_status: Sequence[str],
    logs: Sequence[Path],
    *,
    samples: int,
    interval: float,
) -> Evidence:
    """Write the apps' env file to `workdir` and capture every source, log times in UTC."""
    env_file = workdir / "app.env"
    env_file.write_text(env_text, encoding="utf-8")
    options = SourceOptions(
        pool_status=tuple(pool_status),
        dsn=dsn,
        logs=tuple(str(path) for path in logs),
        configs=(str(env_file),),
        samples=samples,
        interval=interval,
        timeout=CAPTURE_TIMEOUT_SECONDS,
        log_tz=UTC,
    )
    return capture(options)
