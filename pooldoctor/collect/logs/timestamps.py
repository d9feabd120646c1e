"""Recognise the timestamp (and the log flavor) at the start of one log line."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import NamedTuple

MONTHS: dict[bytes, int] = {
    name: number
    for number, name in enumerate(b"Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)
}

# Zone abbreviations PostgreSQL prints for %t/%m that name a single UTC offset.
ZONE_OFFSET_MINUTES: dict[str, int] = {
    "UTC": 0, "GMT": 0, "Z": 0, "WET": 0, "WEST": 60, "CET": 60, "CEST": 120, "MET": 60,
    "MEST": 120, "EET": 120, "EEST": 180, "MSK": 180, "EST": -300, "EDT": -240, "CDT": -300,
    "MST": -420, "MDT": -360, "PST": -480, "PDT": -420, "AKST": -540, "AKDT": -480,
    "HST": -600, "JST": 540, "KST": 540, "HKT": 480, "SGT": 480, "AEST": 600, "AEDT": 660,
    "ACST": 570, "ACDT": 630, "AWST": 480, "NZST": 720, "NZDT": 780, "BRT": -180,
    "ART": -180,
}  # fmt: skip
# Abbreviations that name several offsets (CST: US central or China; IST: India, Ireland,
# Israel; ...): the line is read in --log-tz instead and a problem is recorded.
AMBIGUOUS_ZONES = frozenset({"CST", "IST", "BST", "AST", "ADT", "ECT", "PKT", "SST", "GST"})

MAX_OFFSET_HOURS = 23  # real UTC offsets lie within -12:00..+14:00; +24 names no zone
EPOCH_MILLIS_THRESHOLD = 100_000_000_000  # epoch numbers above this are milliseconds (> 1973)

_ISO = re.compile(
    rb"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:([.,])(\d{1,9}))?"
    rb"(?:(Z)|[ ]?([+-]\d\d(?::?\d\d)?)(?![\d:])|[ ]([A-Z]{1,5})(?![\w]))?"
)
_GUNICORN = re.compile(
    rb"\[(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:[.,]\d+)? ([+-]\d\d:?\d\d)\]"
)
_ACCESS = re.compile(rb"\[(\d\d)/([A-Z][a-z]{2})/(\d{4}):(\d\d):(\d\d):(\d\d) ([+-]\d\d:?\d\d)\]")
_SYSLOG = re.compile(rb"([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d):(\d\d):(\d\d)(?![\d])")
_JSON_TIME = re.compile(
    rb'"(?:ts|time|timestamp|@timestamp)"\s*:\s*(?:"([^"]{1,64})"|(\d{9,17}(?:\.\d+)?))'
)
_PG_SEVERITY = re.compile(
    rb"\b(?:LOG|ERROR|FATAL|PANIC|WARNING|NOTICE|DETAIL|HINT|STATEMENT|CONTEXT|INFO|QUERY"
    rb"|LOCATION|DEBUG[1-5]?):  "
)
_LEVEL_WORD = re.compile(rb"\b(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL|EXCEPTION)\b")
_ACCESS_REQUEST = re.compile(rb'"[A-Z]{3,7} [^"]* HTTP/[\d.]+" \d{3}\b')
ACCESS_SEARCH_BYTES = 200
MINUTE_CACHE_SIZE = 4096  # distinct (minute, zone) prefixes remembered
_MISSING = datetime.min  # an access-log timestamp follows host, ident and user fields


class Stamp(NamedTuple):
    """A timestamp read from a line (UTC) and the flavor of log the line looks like."""

    moment: datetime
    flavor: str


@dataclass
class TimestampReader:
    """Reads line timestamps; naive ones are in `log_tz`, syslog years are inferred.

    `reference` is the latest moment the file can describe (its mtime, or now): a syslog
    `Dec  5 09:30:01` is the most recent such date not after it.
    """

    log_tz: tzinfo
    reference: datetime
    ambiguous_zones: set[str] = field(default_factory=set)
    # Set by read() when the line starts with a timestamp that names an impossible moment
    # (offset beyond +-23:59, a date out of range): the line is read as undated.
    rejected: bool = False
    _minutes: dict[tuple[bytes | None, ...], datetime | None] = field(default_factory=dict)

    def read(self, line: bytes, flavor: bool = True) -> Stamp | None:
        """The timestamp a line starts with (access logs: in its bracketed field), or None.

        With `flavor=False` the flavor is left empty, which saves two regex searches.
        """
        self.rejected = False
        if not line:
            return None
        first = line[0]
        if 0x30 <= first <= 0x39:
            return self._iso_line(line, flavor)
        if first == 0x5B:  # "["
            return self._gunicorn(line)
        if first == 0x7B:  # "{"
            return self._json(line)
        if first <= 0x20:
            return None  # continuation lines: traceback frames, tab-indented SQL
        if 0x41 <= first <= 0x5A:
            stamp = self._syslog(line)
            if stamp is not None:
                return stamp
        return self._access(line)

    def moment(self, line: bytes) -> datetime | None:
        """`read(line, flavor=False).moment` without building a Stamp (the scan's hot path)."""
        if line and 0x30 <= line[0] <= 0x39:
            self.rejected = False
            match = _ISO.match(line)
            if match is not None:
                return self._iso_moment(match)
            stamp = self._access(line)
        else:
            stamp = self.read(line, flavor=False)
        return None if stamp is None else stamp.moment

    def clear_cache(self) -> None:
        """Forget the parsed minutes (they are recomputed on demand)."""
        self._minutes.clear()

    def flavor_without_timestamp(self, line: bytes) -> str | None:
        """Flavor of a line that carries no timestamp (uvicorn access lines, for one)."""
        if _ACCESS_REQUEST.search(line, 0, 400):
            return "access"
        return None

    def _iso_line(self, line: bytes, flavor: bool) -> Stamp | None:
        match = _ISO.match(line)
        if match is None:
            return self._access(line)
        moment = self._iso_moment(match)
        if moment is None:
            return None
        if not flavor:
            return Stamp(moment, "")
        if _PG_SEVERITY.search(line, match.end(), match.end() + 200):
            return Stamp(moment, "postgresql")
        if match.group(7) == b"," or _LEVEL_WORD.search(line, match.end(), match.end() + 80):
            return Stamp(moment, "python")
        return Stamp(moment, "unknown")

    def parse_iso(self, text: bytes) -> datetime | None:
        """An ISO 8601 timestamp (as in JSON values), in UTC."""
        match = _ISO.match(text.strip())
        return self._iso_moment(match) if match else None

    def _iso_moment(self, match: re.Match[bytes]) -> datetime | None:
        year, month, day, hour, minute, second, _, fraction, utc, offset, name = match.groups()
        key = (year, month, day, hour, minute, utc, offset, name)
        base = self._minutes.get(key, _MISSING)
        if base is _MISSING:
            base = self._remember(key, self._minute_base(key))
        if base is None:
            self.rejected = True
            return None
        micros = int(fraction[:6].ljust(6, b"0")) if fraction else 0
        try:
            return base + timedelta(seconds=min(int(second), 59), microseconds=micros)
        except OverflowError:
            self.rejected = True
            return None

    def _remember(self, key: tuple[bytes | None, ...], base: datetime | None) -> datetime | None:
        """Keep a minute's start (None: not a valid minute) for the next line of that minute."""
        if len(self._minutes) >= MINUTE_CACHE_SIZE:
            self._minutes.clear()
        self._minutes[key] = base
        return base

    def _minute_base(self, key: tuple[bytes | None, ...]) -> datetime | None:
        year, month, day, hour, minute, utc, offset, name = key
        zone: tzinfo = self.log_tz
        if utc:
            zone = UTC
        elif offset:
            offset_zone = _offset_zone(offset)
            if offset_zone is None:
                return None
            zone = offset_zone
        elif name:
            text = name.decode("ascii")
            if text in ZONE_OFFSET_MINUTES:
                zone = timezone(timedelta(minutes=ZONE_OFFSET_MINUTES[text]))
            elif text in AMBIGUOUS_ZONES:
                self.ambiguous_zones.add(text)
        y, mo, d, h, mi = (int(part or b"0") for part in (year, month, day, hour, minute))
        return _build(y, mo, d, h, mi, 0, 0, zone)

    def _gunicorn(self, line: bytes) -> Stamp | None:
        match = _GUNICORN.match(line)
        if match is None:
            return self._access(line)
        year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
        moment = self._checked(year, month, day, hour, minute, second, match.group(7))
        return Stamp(moment, "gunicorn") if moment else None

    def _access(self, line: bytes) -> Stamp | None:
        bracket = line.find(b"[", 0, ACCESS_SEARCH_BYTES)
        if bracket < 0:
            return None
        match = _ACCESS.search(line, bracket, ACCESS_SEARCH_BYTES)
        if match is None:
            return None
        day, month_name, year, hour, minute, second, offset = match.groups()
        key = (b"[", day, month_name, year, hour, minute, offset)
        base = self._minutes.get(key, _MISSING)
        if base is _MISSING:
            month = MONTHS.get(month_name)
            if month is None:
                return None
            base = self._remember(
                key, self._checked(int(year), month, int(day), int(hour), int(minute), 0, offset)
            )
        if base is None:
            self.rejected = True
            return None
        try:
            moment = base + timedelta(seconds=min(int(second), 59))
        except OverflowError:
            self.rejected = True
            return None
        return Stamp(moment, "access")

    def _checked(
        self, year: int, month: int, day: int, hour: int, minute: int, second: int, offset: bytes
    ) -> datetime | None:
        zone = _offset_zone(offset)
        moment = None if zone is None else _build(year, month, day, hour, minute, second, 0, zone)
        if moment is None:
            self.rejected = True
        return moment

    def _syslog(self, line: bytes) -> Stamp | None:
        match = _SYSLOG.match(line)
        if match is None:
            return None
        month = MONTHS.get(match.group(1))
        if month is None:
            return None
        day, hour, minute, second = (int(match.group(i)) for i in range(2, 6))
        reference = self.reference.astimezone(self.log_tz)
        for year in (reference.year, reference.year - 1, reference.year - 2, reference.year - 3):
            moment = _build(year, month, day, hour, minute, second, 0, self.log_tz)
            if moment is not None and moment <= self.reference:
                return Stamp(moment, "syslog")
        return None

    def _json(self, line: bytes) -> Stamp | None:
        match = _JSON_TIME.search(line, 0, 4096)
        if match is None:
            return None
        if match.group(1) is not None:
            moment = self.parse_iso(match.group(1))
        else:
            moment = _epoch(float(match.group(2)))
            self.rejected = moment is None
        return Stamp(moment, "json") if moment else None


def _offset_zone(text: bytes) -> tzinfo | None:
    """The fixed zone of a `+hh[:mm]` offset, or None when no zone has it (+24, +3000)."""
    digits = text[1:].replace(b":", b"")
    hours, extra = int(digits[:2]), (int(digits[2:4]) if len(digits) >= 4 else 0)
    if hours > MAX_OFFSET_HOURS or extra >= 60:
        return None
    minutes = hours * 60 + extra
    if minutes == 0:
        return UTC
    return timezone(timedelta(minutes=-minutes if text[:1] == b"-" else minutes))


def _build(
    year: int, month: int, day: int, hour: int, minute: int, second: int, micros: int, zone: tzinfo
) -> datetime | None:
    try:
        moment = datetime(year, month, day, hour, minute, min(second, 59), micros, tzinfo=zone)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):  # no such date, or beyond datetime's range in UTC
        return None


def _epoch(value: float) -> datetime | None:
    if value > EPOCH_MILLIS_THRESHOLD:
        value /= 1000.0
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None
