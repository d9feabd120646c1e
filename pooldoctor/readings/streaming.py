"""Checkouts held by streaming code: responses that keep their session until the client finishes."""

from __future__ import annotations

from collections.abc import Iterable

from pooldoctor.evidence import Holder

STREAM_MARKERS = (
    "stream",
    "sse",
    "eventsource",
    "event_source",
    "generator",
    "iter_",
    "yield",
    "fileresponse",
    "websocket",
)


def is_streaming(holder: Holder) -> bool:
    """Checked out by code whose origin names a stream, generator or websocket."""
    origin = holder.origin.lower()
    return any(marker in origin for marker in STREAM_MARKERS)


def streaming_holders(holders: Iterable[Holder]) -> list[Holder]:
    """The holders that streaming code explains (the leak reading leaves them out)."""
    return [h for h in holders if is_streaming(h)]
