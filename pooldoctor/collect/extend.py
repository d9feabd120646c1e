"""Extend a live capture's window: more samples of the same sources, joined to the first ones."""

from __future__ import annotations

import math
from dataclasses import replace

from pooldoctor.evidence import Evidence, PoolInstance

MAX_EXTEND_SECONDS = 120.0  # the longest `diagnose --extend-up-to` may keep sampling


def extra_samples(seconds: float, interval: float) -> int:
    """Samples that cover `seconds` more at `interval` (at least one)."""
    if interval <= 0:
        return 1
    return max(1, math.ceil(seconds / interval))


def join_captures(first: Evidence, more: Evidence) -> Evidence:
    """`first` with `more`'s samples appended: one longer window. Logs, configuration and
    source statuses come from `more` (read later, they include everything `first` saw)."""
    later = {instance.url: instance for instance in more.pools}
    pools = tuple(
        PoolInstance(
            url=instance.url,
            samples=instance.samples + later[instance.url].samples,
            errors=instance.errors + later[instance.url].errors,
        )
        if instance.url in later
        else instance
        for instance in first.pools
    )
    postgres = first.postgres
    if postgres is not None and more.postgres is not None:
        postgres = replace(
            more.postgres,
            samples=postgres.samples + more.postgres.samples,
            errors=postgres.errors + more.postgres.errors,
        )
    return replace(
        more,
        started_at=first.started_at,
        pools=pools,
        postgres=postgres if postgres is not None else more.postgres,
    )
