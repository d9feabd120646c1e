"""Bounded HTTP load: N client threads, stopping at M requests or T seconds, whichever first."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

USER_AGENT = "pooldoctor-lab-load/1"
# Hard ceilings so no caller can ask for an unbounded run.
MAX_CLIENTS = 256
MAX_SECONDS = 600.0


@dataclass(frozen=True)
class LoadSpec:
    """What to request and how hard: paths are cycled per client, offset by the client index."""

    paths: Sequence[str]
    clients: int = 4
    max_requests: int = 1000
    max_seconds: float = 5.0
    request_timeout: float = 10.0
    pause_seconds: float = 0.0  # think time between one client's requests

    def __post_init__(self) -> None:
        if not self.paths:
            raise ValueError("load needs at least one path")
        if not 1 <= self.clients <= MAX_CLIENTS:
            raise ValueError(f"clients must be within 1..{MAX_CLIENTS}")
        if self.max_requests < 1 or not 0 < self.max_seconds <= MAX_SECONDS:
            raise ValueError(
                f"load must be bounded: max_requests >= 1, 0 < max_seconds <= {MAX_SECONDS:g}"
            )


@dataclass(frozen=True)
class LoadBounds:
    """One lab's ceilings for every load it starts: requests per run, seconds per request."""

    max_requests: int
    request_timeout: float

    def spec(
        self, paths: Sequence[str], clients: int, seconds: float, pause: float = 0.0
    ) -> LoadSpec:
        """`clients` cycling through `paths` for at most `seconds`, within these bounds."""
        return LoadSpec(
            paths=tuple(paths),
            clients=clients,
            max_requests=self.max_requests,
            max_seconds=seconds,
            request_timeout=self.request_timeout,
            pause_seconds=pause,
        )


@dataclass
class LoadResult:
    """Outcome counts: HTTP status codes as "200", "500"..., failures as "error:<Type>"."""

    statuses: Counter[str] = field(default_factory=Counter)
    elapsed_seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    def count(self, status: int | str) -> int:
        return self.statuses[str(status)]


def request_once(url: str, timeout: float) -> str:
    """GET url; the HTTP status as text, or "error:<Type>" when no status came back."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return str(response.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        exc.close()
        return str(exc.code)
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return f"error:{type(reason).__name__}"


class _Budget:
    """Shared request budget and deadline for all clients of one run."""

    def __init__(self, spec: LoadSpec, stop: threading.Event) -> None:
        self._left = spec.max_requests
        self._deadline = time.monotonic() + spec.max_seconds
        self._lock = threading.Lock()
        self._stop = stop

    def take(self) -> bool:
        if self._stop.is_set() or time.monotonic() >= self._deadline:
            return False
        with self._lock:
            if self._left <= 0:
                return False
            self._left -= 1
            return True


def run_load(base_url: str, spec: LoadSpec, stop: threading.Event | None = None) -> LoadResult:
    """Run the load to completion (or until `stop` is set) and count the outcomes."""
    stop = stop or threading.Event()
    budget = _Budget(spec, stop)
    result = LoadResult()
    lock = threading.Lock()
    started = time.monotonic()

    def client(index: int) -> None:
        sent = 0
        while budget.take():
            path = spec.paths[(index + sent) % len(spec.paths)]
            outcome = request_once(base_url.rstrip("/") + path, spec.request_timeout)
            sent += 1
            with lock:
                result.statuses[outcome] += 1
            if spec.pause_seconds and stop.wait(spec.pause_seconds):
                return

    threads = [
        threading.Thread(target=client, args=(i,), name=f"load-{i}", daemon=True)
        for i in range(spec.clients)
    ]
    for thread in threads:
        thread.start()
    join_deadline = started + spec.max_seconds + spec.request_timeout + 1.0
    for thread in threads:
        thread.join(timeout=max(0.0, join_deadline - time.monotonic()))
    result.elapsed_seconds = time.monotonic() - started
    return result


class BackgroundLoad:
    """Load running in a background thread; `stop()` ends it early and returns the result.
    As a context manager it starts on entering and stops sending on leaving."""

    def __init__(self, base_url: str, spec: LoadSpec) -> None:
        self._stop = threading.Event()
        self._result: LoadResult | None = None
        self._spec = spec
        self._thread = threading.Thread(
            target=self._run, args=(base_url,), name="load", daemon=True
        )

    def _run(self, base_url: str) -> None:
        self._result = run_load(base_url, self._spec, self._stop)

    def start(self) -> BackgroundLoad:
        self._thread.start()
        return self

    def __enter__(self) -> BackgroundLoad:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Leaving the block sends no new requests; `stop()` or `wait()` collects the result."""
        self.request_stop()

    def wait(self) -> LoadResult:
        """Wait for the load to end by itself (bounded by its spec)."""
        self._thread.join(timeout=self._spec.max_seconds + self._spec.request_timeout + 2.0)
        return self._result or LoadResult()

    def request_stop(self) -> None:
        """Send no new requests; those in flight finish on their own."""
        self._stop.set()

    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> LoadResult:
        self.request_stop()
        return self.wait()
