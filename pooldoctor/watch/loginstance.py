"""Which app instance a log record names, and which watched pool-status URL that instance is.

A record starts at a timestamped line; its continuation lines (a traceback ending in the pool's
timeout error) belong to the instance its first line names. Three forms name one:
- a syslog header: `Nov 30 05:00:01 app-1 orders[4242]: ...` or with an ISO timestamp;
- a key: `host=app-1`, `hostname=app-1` or `instance=app-1:8000` (also `"host": "app-1"` in JSON).
An instance matches a URL by host name, by the host name's first label (`app-1` for
`app-1.prod.internal`) or by `host:port`; a name matching several watched URLs names none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from pooldoctor.watch.rate import Rate

_SYSLOG_HEADER = re.compile(
    rb"(?:<\d{1,3}>\d{0,2} ?)?"
    rb"(?:[A-Z][a-z]{2} {1,2}\d{1,2} \d\d:\d\d:\d\d|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d\S*)"
    rb" (?P<host>[A-Za-z0-9][A-Za-z0-9.:-]*) [\w./-]+\[\d+\]: "
)
_KEY = re.compile(
    rb"(?<![\w.-])(?:host|hostname|instance)=(?P<host>[\w.:-]+)"
    rb'|"(?:host|hostname|instance)"\s*:\s*"(?P<quoted>[\w.:-]+)"'
)
HEADER_SEARCH_BYTES = 400  # where a record's first line names its instance


def named_instance(line: bytes) -> str | None:
    """The instance a record's first line names, lower-cased, or None."""
    head = line[:HEADER_SEARCH_BYTES]
    match = _SYSLOG_HEADER.match(head) or _KEY.search(head)
    if match is None:
        return None
    name = match["host"] or match["quoted"]
    return name.decode("ascii", "replace").lower().rstrip(":")


def url_names(url: str) -> frozenset[str]:
    """The names an instance can go by in a log: host, first label of the host, host:port."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return frozenset()
    if not host:
        return frozenset()
    names = {host, host.split(".", 1)[0] if not host[0].isdigit() else host}
    if port is not None:
        names.add(f"{host}:{port}")
    return frozenset(name.lower() for name in names)


def attribute(names: set[str], urls: tuple[str, ...]) -> dict[str, str]:
    """Each name that matches exactly one of the watched URLs, with that URL."""
    by_url = {url: url_names(url) for url in urls}
    found = {}
    for name in names:
        matches = [url for url, known in by_url.items() if name in known]
        if len(matches) == 1:
            found[name] = matches[0]
    return found


@dataclass(frozen=True)
class LogRates:
    """Pool timeouts counted in the followed logs over one span, per instance their records name."""

    per_instance: dict[str | None, int]  # None: records that name no instance
    named: frozenset[str]  # every instance a timeout record named since the watch started
    span: Rate  # the span counted over; its count is the total, whichever instance logged it

    def rate(self, count: float) -> Rate:
        """`count` timeouts over this span."""
        return self.span.with_count(count)


@dataclass(frozen=True)
class UrlRates:
    """The log's timeout rates laid over the watched URLs."""

    per_url: dict[str, Rate] | None  # None: the log names no watched instance
    app_wide: Rate
    unattributed: Rate | None  # per-URL mode: timeouts whose records name no watched instance


def rates_by_url(rates: LogRates, urls: tuple[str, ...]) -> UrlRates:
    """Each watched URL's own rate when the log names watched instances, else the app-wide one."""
    attributed = attribute(set(rates.named), urls)
    if not attributed:
        return UrlRates(None, rates.span, None)
    per_url = dict.fromkeys(urls, 0)
    unattributed = 0
    for name, count in rates.per_instance.items():
        url = attributed.get(name) if name is not None else None
        if url is None:
            unattributed += count
        else:
            per_url[url] += count
    laid = {url: rates.rate(count) for url, count in per_url.items()}
    return UrlRates(laid, rates.span, rates.rate(unattributed))
