"""Fetch one pool-status sample over HTTP(S): bounded in time and size, never raising."""

from __future__ import annotations

import base64
import contextlib
import heapq
import http.client
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from urllib.parse import SplitResult, unquote, urljoin, urlsplit

from pooldoctor import __version__
from pooldoctor.collect.pool_payloads import (
    PayloadError,
    excerpt,
    looks_like_html,
    parse_pool_payload,
)
from pooldoctor.evidence import PoolSample, SampleError
from pooldoctor.redact import redact_url, scrub_secrets, url_secrets

TOKEN_ENV = "POOLDOCTOR_POOL_STATUS_TOKEN"
MAX_BODY_BYTES = 4 * 1024 * 1024  # a pool status is a few KiB; megabytes mean a wrong URL
MAX_REDIRECTS = 5  # enough for http->https plus a trailing-slash hop; more is a misconfiguration
READ_CHUNK_BYTES = 64 * 1024
ERROR_EXCERPT_CHARS = 120  # a 5xx body excerpt long enough to hold an exception message
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CANCEL_POLL_SECONDS = 0.1  # how soon a fetch notices that the run was interrupted

# --- fetching ---------------------------------------------------------------------------------


class _Failed(Exception):
    """A fetch that failed for a reason already phrased for the user."""


@dataclass
class _Fetch:
    """One fetch attempt; the watchdog may abort it from another thread at its deadline."""

    url: str
    timeout: float
    deadline: float
    token: str | None
    phase: str = "connecting"
    where: str = ""
    bytes_received: int = 0
    result: PoolSample | SampleError | None = None
    secrets: set[str] = field(default_factory=set)
    _connection: http.client.HTTPConnection | None = None
    _sock: socket.socket | None = None
    _response: http.client.HTTPResponse | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _aborted: bool = False
    finished: bool = False  # set once run() has returned: nothing left to abort
    cancel: threading.Event | None = None  # the run's interruption, if it can be interrupted

    def run(self, started: datetime) -> None:
        try:
            outcome: PoolSample | SampleError = self._follow()
        except _Failed as failure:
            outcome = SampleError(started, str(failure))
        except Exception as exc:  # the collector contract: record every failure, never raise
            outcome = SampleError(started, self._describe(exc))
        finally:
            self._close()
        if isinstance(outcome, SampleError):
            outcome = SampleError(outcome.at, scrub_secrets(outcome.error, self.secrets))
        self.result = outcome

    @property
    def aborted(self) -> bool:
        return self._aborted

    def abort(self) -> None:
        """Tear down the connection from another thread once the deadline has passed."""
        with self._lock:
            self._aborted = True
            sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def timeout_message(self) -> str:
        if self.phase == "connecting":
            return f"no answer within {self.timeout:g}s: could not connect to {self.where}"
        if self.phase == "waiting":
            return f"no answer within {self.timeout:g}s: connected, but no response"
        return (
            f"no complete answer within {self.timeout:g}s: {self.bytes_received} bytes received, "
            "server sends too slowly"
        )

    def _remaining(self) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise _Failed(self.timeout_message())
        return remaining

    def _follow(self) -> PoolSample | SampleError:
        url = self.url
        visited = [url]
        origin = _origin(_check_url(url))
        while True:
            self.secrets |= url_secrets(url)
            parts = _check_url(url)
            status, reason, headers, body, received = self._get(parts, _origin(parts) == origin)
            if status not in REDIRECT_STATUSES:
                return _interpret(status, reason, headers, body, received, self.token is not None)
            location = headers.get("Location")
            if not location:
                raise _Failed(f"HTTP {status} redirect without a Location header")
            url = urljoin(url, location.strip())
            if url in visited:
                hops = " -> ".join(_short(hop, origin) for hop in [*visited, url])
                raise _Failed(f"redirect loop: {hops}")
            visited.append(url)
            if len(visited) > MAX_REDIRECTS + 1:
                raise _Failed(
                    f"too many redirects (more than {MAX_REDIRECTS}), last to {_short(url, origin)}"
                )

    def _get(
        self, parts: SplitResult, same_origin: bool
    ) -> tuple[int, str, http.client.HTTPMessage, bytes, datetime]:
        self._close()
        host, port = parts.hostname or "", parts.port
        self.where = f"{host}:{port or (443 if parts.scheme == 'https' else 80)}"
        self.phase, self.bytes_received = "connecting", 0
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            context = ssl.create_default_context()
            connection = http.client.HTTPSConnection(
                host, port, timeout=self._remaining(), context=context
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=self._remaining())
        with self._lock:
            if self._aborted:
                raise _Failed(self.timeout_message())
            self._connection = connection
        connection.connect()
        sock = connection.sock
        assert sock is not None  # connect() either sets it or raises
        with self._lock:
            self._sock = sock  # kept: getresponse() drops connection.sock on Connection: close
            if self._aborted:
                raise _Failed(self.timeout_message())
        self.phase = "waiting"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("GET", path, headers=self._headers(parts, same_origin))
        sock.settimeout(self._remaining())
        response = connection.getresponse()
        self._response = response
        received = datetime.now(UTC)
        self.phase = "reading"
        body = self._read_body(sock, response)
        return response.status, response.reason, response.headers, body, received

    def _headers(self, parts: SplitResult, same_origin: bool) -> dict[str, str]:
        headers = {
            "User-Agent": f"pooldoctor/{__version__}",
            "Accept": "application/json, text/plain;q=0.9, */*;q=0.5",
            "Accept-Encoding": "identity",
            "Connection": "close",
        }
        if not same_origin:
            return headers  # never hand credentials to another host on a redirect
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        elif parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            encoded = base64.b64encode(pair.encode()).decode()
            self.secrets.add(encoded)  # a peer that echoes the header must not leak it
            headers["Authorization"] = "Basic " + encoded
        return headers

    def _read_body(self, sock: socket.socket, response: http.client.HTTPResponse) -> bytes:
        declared = response.getheader("Content-Length")
        if declared and declared.strip().isdigit() and int(declared) > MAX_BODY_BYTES:
            raise _Failed(_too_large(int(declared)))
        expected = int(declared) if declared and declared.strip().isdigit() else None
        chunks: list[bytes] = []
        while True:
            sock.settimeout(self._remaining())
            chunk = response.read1(READ_CHUNK_BYTES)
            if not chunk:
                if self._aborted:  # the watchdog's shutdown looks like an end of stream
                    raise _Failed(self.timeout_message())
                if expected is not None and self.bytes_received < expected:
                    raise _Failed(
                        f"response cut short: {self.bytes_received} of {expected} bytes "
                        "(Content-Length) received"
                    )
                return b"".join(chunks)
            chunks.append(chunk)
            self.bytes_received += len(chunk)
            if self.bytes_received > MAX_BODY_BYTES:
                raise _Failed(_too_large(self.bytes_received, at_least=True))

    def _close(self) -> None:
        with self._lock:
            connection, self._connection, self._sock = self._connection, None, None
            response, self._response = self._response, None
        with contextlib.suppress(OSError):
            if response is not None:
                response.close()
            if connection is not None:
                connection.close()

    def _describe(self, exc: Exception) -> str:
        if self._aborted or isinstance(exc, TimeoutError):
            return self.timeout_message()
        return describe_error(exc, self.where)


def describe_error(exc: BaseException, where: str) -> str:
    """A one-line, human reason for a network or protocol failure talking to `where`."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted for {where}: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or str(exc)
        hint = " (plain HTTP on an https:// URL?)" if reason == "WRONG_VERSION_NUMBER" else ""
        return f"TLS handshake with {where} failed: {reason}{hint}"
    if isinstance(exc, socket.gaierror):
        return f"DNS lookup failed for {where.rpartition(':')[0]}: {exc.strerror or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused by {where}: nothing listening there?"
    if isinstance(exc, http.client.RemoteDisconnected):
        return f"{where} closed the connection without an HTTP response"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return f"connection reset by {where}"
    if isinstance(exc, http.client.IncompleteRead):
        return f"response cut short: {len(exc.partial)} bytes received, more expected"
    if isinstance(exc, http.client.BadStatusLine):
        return f"{where} did not answer with HTTP: {excerpt(str(exc), 40)}"
    if isinstance(exc, http.client.HTTPException):
        return f"invalid HTTP response from {where}: {type(exc).__name__} {excerpt(str(exc), 40)}"
    if isinstance(exc, OSError):
        return f"network error talking to {where}: {exc.strerror or exc}"
    return f"unexpected error fetching pool status: {type(exc).__name__}: {excerpt(str(exc), 80)}"


def _check_url(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as exc:
        raise _Failed(f"invalid URL {redact_url(url)}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Failed(f"not an http(s) URL: {redact_url(url)}")
    return parts


def _origin(parts: SplitResult) -> tuple[str, str, int | None]:
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme, (parts.hostname or "").lower(), port


def _short(url: str, origin: tuple[str, str, int | None]) -> str:
    """A redirect hop for messages: path only when it stays on the original origin."""
    redacted = redact_url(url)
    parts = urlsplit(redacted)
    if _origin(parts) != origin:
        return redacted
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _too_large(size: int, at_least: bool = False) -> str:
    limit_mib = MAX_BODY_BYTES // (1024 * 1024)
    more = "more than " if at_least else ""
    return (
        f"response too large ({more}{size} bytes, limit {limit_mib} MiB): not a pool-status payload"
    )


def _decode(body: bytes, headers: http.client.HTTPMessage) -> str:
    charset = headers.get_content_charset() or "utf-8"
    try:
        return body.decode(charset, errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def _interpret(
    status: int,
    reason: str,
    headers: http.client.HTTPMessage,
    body: bytes,
    received: datetime,
    has_token: bool,
) -> PoolSample | SampleError:
    text = _decode(body, headers)
    content_type = headers.get("Content-Type")
    reason = reason or _phrase(status)
    if 200 <= status < 300:
        try:
            return parse_pool_payload(text, content_type, received)
        except PayloadError as exc:
            return SampleError(received, str(exc))
    message = f"HTTP {status} {reason}".rstrip()
    if status in (401, 403):
        message += " (token rejected?)" if has_token else f" (needs a token? set {TOKEN_ENV})"
    elif status == 404:
        message += " (wrong path?)"
    elif status >= 500:
        detail = _error_excerpt(text, content_type)
        if detail:
            message += f": {detail}"
    elif status < 400:
        message = f"unexpected {message}"
    return SampleError(received, message)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def _error_excerpt(text: str, content_type: str | None) -> str:
    media = (content_type or "").split(";")[0].strip().lower()
    if looks_like_html(text, media):
        title = _HTML_TITLE.search(text[:4096])
        return f"HTML page titled {excerpt(title.group(1))}" if title else "HTML page"
    if not text.strip() or not (media.startswith("text/") or media.endswith(("json", "+xml"))):
        return ""
    return excerpt(text, ERROR_EXCERPT_CHARS)


class _Watchdog:
    """One thread for all fetches: aborts each fetch still running at its deadline, or at once
    when its run is interrupted (Ctrl-C sets the run's cancel event).

    Socket timeouts bound each single read; this bounds the whole fetch (a server dripping
    header bytes) without a thread per fetch, which a fleet of URLs would pay for in CPU.
    """

    def __init__(self) -> None:
        self._due: list[tuple[float, int, _Fetch]] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def watching(self, fetch: _Fetch) -> Iterator[None]:
        entry = (fetch.deadline, id(fetch), fetch)
        with self._wake:
            heapq.heappush(self._due, entry)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="pool-status-deadlines", daemon=True
                )
                self._thread.start()
            if self._due[0] is entry:
                self._wake.notify()
        try:
            yield
        finally:
            fetch.finished = True

    def _run(self) -> None:
        while True:
            expired: list[_Fetch] = []
            with self._wake:
                while not self._due:
                    self._wake.wait()
                now = time.monotonic()
                while self._due and (self._due[0][0] <= now or self._due[0][2].finished):
                    expired.append(heapq.heappop(self._due)[2])
                expired += [
                    fetch
                    for _, _, fetch in self._due
                    if fetch.cancel is not None and fetch.cancel.is_set() and not fetch.finished
                ]
                if not expired and self._due:
                    self._wake.wait(min(self._due[0][0] - now, CANCEL_POLL_SECONDS))
            for fetch in expired:
                if not fetch.finished:
                    fetch.abort()


_WATCHDOG = _Watchdog()


def _new_watchdog_after_fork() -> None:
    global _WATCHDOG  # the parent's watchdog thread does not exist in a forked child
    _WATCHDOG = _Watchdog()


os.register_at_fork(after_in_child=_new_watchdog_after_fork)


def fetch_pool_sample(
    url: str, timeout: float, cancel: threading.Event | None = None
) -> PoolSample | SampleError:
    """GET and parse one pool-status URL; any failure is a SampleError, all within `timeout`.

    Runs in the calling thread (a sampling round calls it from its worker pool); a shared
    watchdog tears the connection down when the deadline passes mid-fetch, or as soon as
    `cancel` is set (Ctrl-C in the main thread).
    """
    started = datetime.now(UTC)
    token = os.environ.get(TOKEN_ENV) or None
    fetch = _Fetch(url, timeout, time.monotonic() + timeout, token)
    if token:
        fetch.secrets.add(token)
    fetch.cancel = cancel
    if cancel is not None and cancel.is_set():
        return SampleError(started, "cancelled: pooldoctor was interrupted")
    with _WATCHDOG.watching(fetch):
        fetch.run(started)
    if cancel is not None and cancel.is_set() and fetch.aborted:
        return SampleError(started, "cancelled: pooldoctor was interrupted")
    if fetch.result is None:  # unreachable: run() always sets a result
        return SampleError(started, "pool-status fetch ended without a result")
    return fetch.result
