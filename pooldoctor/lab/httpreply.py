"""What the lab's hand-written HTTP servers send and log: a JSON response and an access line."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime


def json_response(status: int, body: bytes) -> bytes:
    """A whole HTTP/1.1 response carrying the JSON `body`; the connection closes after it."""
    head = (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def log_access(
    logger: logging.Logger,
    request_line: str,
    status: int,
    size: int,
    started: float,
    *,
    client: str = "127.0.0.1",
    agent: str = "-",
) -> None:
    """One combined-log-format line, with the seconds since `started` (monotonic) at the end."""
    when = datetime.now(UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
    logger.info(
        '%s - - [%s] "%s" %d %d "-" "%s" %.3f',
        client,
        when,
        request_line,
        status,
        size,
        agent,
        time.monotonic() - started,
    )
