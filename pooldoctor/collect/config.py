"""Pool configuration collector (placeholder until implemented)."""

from __future__ import annotations

from collections.abc import Sequence

from pooldoctor.evidence import PoolConfig


def read_config(paths: Sequence[str], workers: int | None) -> PoolConfig:
    raise NotImplementedError
