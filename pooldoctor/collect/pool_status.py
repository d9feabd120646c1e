"""Pool-status endpoint collector (placeholder until implemented)."""

from __future__ import annotations

from pooldoctor.evidence import PoolSample, SampleError


def redact_url(url: str) -> str:
    return url


def fetch_pool_sample(url: str, timeout: float) -> PoolSample | SampleError:
    raise NotImplementedError
