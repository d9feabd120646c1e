"""The evidence model: what each source saw, when, and what failed; with a versioned JSON form."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from pooldoctor.jsonio import dumps_dataclass, loads_dataclass

EVIDENCE_SCHEMA = "pooldoctor.evidence/1"
# Ages and durations beyond this are nonsense for a pool and overflow date arithmetic; the pool
# collector refuses them too.
MAX_SECONDS = 10 * 365 * 86400.0
MAX_COUNT = 10_000_000


class SourceState(StrEnum):
    """Outcome of collecting one source."""

    OK = "ok"
    ERROR = "error"
    SKIPPED = "skipped"


class LogEvent(StrEnum):
    """Classified log events; the value is the stable name used in evidence and reports."""

    POOL_TIMEOUT = "pool_timeout"  # SQLAlchemy QueuePool limit ... (3o7r)
    PSYCOPG_POOL_TIMEOUT = "psycopg_pool_timeout"  # couldn't get a connection after N sec
    PSYCOPG_POOL_QUEUE_FULL = "psycopg_pool_queue_full"  # pool has already N requests waiting
    GC_CLEANUP = "gc_cleanup"  # garbage collector cleaning up non-checked-in connection
    TOO_MANY_CLIENTS = "too_many_clients"  # 53300 sorry, too many clients already
    RESERVED_SLOTS = "reserved_slots"  # remaining connection slots are reserved ...
    ROLE_LIMIT = "role_connection_limit"  # too many connections for role / database
    STATEMENT_TIMEOUT = "statement_timeout"  # 57014
    LOCK_TIMEOUT = "lock_timeout"  # 55P03
    DEADLOCK = "deadlock"  # 40P01
    LOCK_WAIT = "lock_wait"  # log_lock_waits: still waiting for ShareLock ...
    IDLE_IN_TRANSACTION_TIMEOUT = "idle_in_transaction_timeout"  # 25P03
    IDLE_SESSION_TIMEOUT = "idle_session_timeout"  # 57P05
    ADMIN_SHUTDOWN = "admin_shutdown"  # 57P01 terminating connection due to administrator command
    SERVER_CLOSED = "server_closed"  # server closed the connection unexpectedly / lost
    CLIENT_EOF_IN_TRANSACTION = "client_eof_in_transaction"  # unexpected EOF ... open transaction
    CONNECT_TIMEOUT = "connect_timeout"  # connection timeout expired / couldn't connect
    CANNOT_CONNECT_NOW = "cannot_connect_now"  # 57P03 the database system is starting up
    READ_ONLY = "read_only_transaction"  # 25006
    PREPARED_STATEMENT = "prepared_statement"  # prepared statement ... already exists
    PGBOUNCER = "pgbouncer"  # max_client_conn, query_wait_timeout, ...
    SSL_ERROR = "ssl_error"  # decryption failed or bad record mac / SSL SYSCALL EOF
    INVALID_TRANSACTION = "invalid_transaction"  # 8s2b Can't reconnect until invalid ...
    HTTP_5XX = "http_5xx"  # access-log lines with a 5xx status
    SERVER_START = "server_start"  # database system is ready to accept connections
    SERVER_SHUTDOWN = "server_shutdown"  # received fast shutdown request / shutting down


@dataclass(frozen=True)
class SourceStatus:
    """One source's outcome: what was asked, whether it worked, and why not."""

    name: str
    kind: str
    status: SourceState
    detail: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class Holder:
    """A checkout currently held, as reported by an instrumented app (oldest first)."""

    origin: str
    age_seconds: float
    thread: str | None = None
    thread_alive: bool | None = None  # False: that thread has finished; None: not reported


@dataclass(frozen=True)
class PoolSample:
    """One reading of one app instance's pool. None means the payload did not say."""

    at: datetime
    payload_format: str
    size: int | None = None
    checked_out: int | None = None
    checked_in: int | None = None
    overflow: int | None = None
    max_overflow: int | None = None
    timeout: float | None = None
    waiting: int | None = None
    counters: dict[str, float] = field(default_factory=dict)
    holders: tuple[Holder, ...] = ()
    notes: tuple[str, ...] = ()  # how the payload was read: summed series, ignored values
    holders_total: int | None = None  # every checkout held, beyond the oldest ones listed
    holders_dead_threads: int | None = None  # held by threads that have finished, listed or not

    @property
    def capacity(self) -> int | None:
        """Most connections the pool hands out (size + max_overflow); None if unbounded/unknown."""
        if "pool_max" in self.counters:
            return int(self.counters["pool_max"])
        if self.size is None:
            return None
        if self.max_overflow is None:
            return self.size
        if self.max_overflow < 0:
            return None
        return self.size + self.max_overflow

    @property
    def in_use(self) -> int | None:
        """Connections checked out: the payload's count, else psycopg_pool's size - available."""
        if self.checked_out is not None:
            return self.checked_out
        if "pool_size" in self.counters and "pool_available" in self.counters:
            return int(self.counters["pool_size"] - self.counters["pool_available"])
        return None

    @property
    def queued(self) -> int:
        """Callers waiting for a connection: the payload's count, else psycopg_pool's, else 0."""
        if self.waiting is not None:
            return self.waiting
        return int(self.counters.get("requests_waiting", 0))

    @property
    def full(self) -> bool:
        """At capacity (every connection checked out) or callers already waiting."""
        if self.queued > 0:
            return True
        capacity = self.capacity
        in_use = self.in_use
        return capacity is not None and in_use is not None and in_use >= capacity > 0


@dataclass(frozen=True)
class SampleError:
    """A sample that could not be read."""

    at: datetime
    error: str


@dataclass(frozen=True)
class PoolInstance:
    """All readings of one pool-status endpoint (one app instance)."""

    url: str
    samples: tuple[PoolSample, ...] = ()
    errors: tuple[SampleError, ...] = ()


@dataclass(frozen=True)
class Backend:
    """One pg_stat_activity row."""

    pid: int
    backend_type: str | None
    usename: str | None
    datname: str | None
    application_name: str | None
    client_addr: str | None
    state: str | None
    backend_start: datetime | None
    xact_start: datetime | None
    query_start: datetime | None
    state_change: datetime | None
    wait_event_type: str | None
    wait_event: str | None
    blocking_pids: tuple[int, ...] = ()
    query: str | None = None
    query_hidden: bool = False
    lock_wait_start: datetime | None = None  # pg_locks.waitstart (PostgreSQL 14+)


@dataclass(frozen=True)
class ActivitySample:
    """One pg_stat_activity snapshot, taken at the server's clock time `at`."""

    at: datetime
    backends: tuple[Backend, ...] = ()


@dataclass(frozen=True)
class ConnectionLimit:
    """A per-role or per-database connection limit and the current count."""

    kind: str
    name: str
    limit: int
    current: int


@dataclass(frozen=True)
class ConnectFailure:
    """Why pooldoctor's own connection to PostgreSQL failed."""

    category: str
    message: str
    sqlstate: str | None = None


@dataclass(frozen=True)
class PostgresEvidence:
    """What PostgreSQL showed: settings, limits, activity samples, or why it could not."""

    target: str
    connect_seconds: float | None = None
    connect_failure: ConnectFailure | None = None
    server_version: str | None = None
    server_version_num: int | None = None
    current_user: str | None = None
    is_superuser: bool | None = None
    settings: dict[str, str] = field(default_factory=dict)
    limits: tuple[ConnectionLimit, ...] = ()
    samples: tuple[ActivitySample, ...] = ()
    errors: tuple[str, ...] = ()
    can_read_all_stats: bool | None = None  # member of pg_read_all_stats (pg_monitor has it)
    hidden_per_sample: tuple[int, ...] = ()  # rows whose state/query this role could not see
    hidden_roles: tuple[str, ...] = ()  # the roles owning those rows
    reserved_connection_roles: tuple[str, ...] = ()  # PG16+ pg_use_reserved_connections members
    in_recovery: bool | None = None  # pg_is_in_recovery(): the sampled server is a standby


@dataclass(frozen=True)
class MinuteCount:
    """Occurrences of one event kind in one UTC minute."""

    minute: datetime
    count: int


@dataclass(frozen=True)
class LogEventSummary:
    """All occurrences of one event kind in one log file."""

    event: LogEvent
    count: int
    first: datetime | None
    last: datetime | None
    per_minute: tuple[MinuteCount, ...] = ()
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoggedException:
    """One exception the app logged with a traceback: when, what, and where in the app's code."""

    at: datetime
    type: str
    message: str
    app_frame: str | None = None  # innermost frame in the app's own code: "file:line in func"
    app_frames: tuple[str, ...] = ()  # the app's frames, outermost first
    logged_as: str = ""  # the log message that carried the traceback


@dataclass(frozen=True)
class RequestLine:
    """One access-log request with its duration (only lines that report one)."""

    at: datetime
    status: int
    seconds: float
    path: str = ""


MOMENT_CANCELLATION = "cancellation"  # a cancelled request task or a client that went away
MOMENT_GC_CLEANUP = "gc_cleanup"  # the garbage collector cleaning up a checked-out connection


@dataclass(frozen=True)
class LogMoment:
    """One timed log record of a kind the diagnosis lines up with others (cancellation, GC)."""

    at: datetime
    kind: str
    text: str = ""


@dataclass(frozen=True)
class AppLogFacts:
    """What an app log says at millisecond precision: exceptions, request times, moments."""

    exceptions: tuple[LoggedException, ...] = ()
    requests: tuple[RequestLine, ...] = ()
    moments: tuple[LogMoment, ...] = ()
    truncated: bool = False  # the file held more than the kept records (the latest are kept)


@dataclass(frozen=True)
class LogFileEvidence:
    """One log file (or stdin): how it parsed and what it contained."""

    path: str
    flavor: str
    lines: int = 0
    timestamped_lines: int = 0
    first: datetime | None = None
    last: datetime | None = None
    events: tuple[LogEventSummary, ...] = ()
    problems: tuple[str, ...] = ()
    app: AppLogFacts | None = None


@dataclass(frozen=True)
class CodeFlag:
    """A `pooldoctor scan` finding inside the function of an app frame the evidence names."""

    frame: str  # "file:line in function", as the log or holder named it
    path: str
    line: int
    rule_id: str
    message: str


@dataclass(frozen=True)
class PoolConfig:
    """The app's pool settings as read from env files and flags; None means not set."""

    files: tuple[str, ...] = ()
    pool_size: int | None = None
    max_overflow: int | None = None
    pool_timeout: float | None = None
    pool_recycle: float | None = None
    pool_pre_ping: bool | None = None
    pool_use_lifo: bool | None = None
    statement_timeout: float | None = None
    connect_timeout: float | None = None
    workers: int | None = None
    problems: tuple[str, ...] = ()
    application_name: str | None = None  # how the app names itself to PostgreSQL


@dataclass(frozen=True)
class PgBouncerPool:
    """One SHOW POOLS row: a (database, user) pool's clients and server connections."""

    database: str
    user: str
    cl_active: int = 0
    cl_waiting: int = 0
    sv_active: int = 0
    sv_idle: int = 0
    sv_used: int = 0
    sv_tested: int = 0
    sv_login: int = 0
    maxwait_seconds: float = 0.0
    pool_mode: str | None = None


@dataclass(frozen=True)
class PgBouncerDatabase:
    """One SHOW DATABASES row: where a database points and its own limits (None: not set)."""

    name: str
    host: str | None = None
    port: int | None = None
    database: str | None = None
    force_user: str | None = None
    pool_size: int | None = None
    reserve_pool: int | None = None
    pool_mode: str | None = None
    max_connections: int | None = None
    current_connections: int | None = None
    paused: bool = False
    disabled: bool = False


@dataclass(frozen=True)
class PgBouncerConnection:
    """One SHOW CLIENTS / SHOW SERVERS row; `link` is the peer's ptr while paired."""

    user: str
    database: str
    state: str
    addr: str | None = None
    port: int | None = None
    connect_time: str | None = None
    request_time: str | None = None
    wait_seconds: float = 0.0
    ptr: str | None = None
    link: str | None = None
    application_name: str | None = None


@dataclass(frozen=True)
class PgBouncerSample:
    """One round of SHOW POOLS / STATS / CLIENTS / SERVERS / DATABASES on one PgBouncer."""

    at: datetime
    pools: tuple[PgBouncerPool, ...] = ()
    databases: tuple[PgBouncerDatabase, ...] = ()
    clients: tuple[PgBouncerConnection, ...] = ()
    servers: tuple[PgBouncerConnection, ...] = ()
    clients_total: int = 0  # before the listing cap
    servers_total: int = 0
    stats: dict[str, dict[str, float]] = field(default_factory=dict)  # database -> column -> value


@dataclass(frozen=True)
class PgBouncerEvidence:
    """What one PgBouncer admin console showed, or why it could not."""

    target: str
    version: str | None = None
    config: dict[str, str] = field(default_factory=dict)
    users: dict[str, dict[str, str]] = field(default_factory=dict)  # SHOW USERS, by name
    samples: tuple[PgBouncerSample, ...] = ()
    connect_failure: str | None = None
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class SeriesPoint:
    """One point of a Prometheus range-query result."""

    at: datetime
    value: float


@dataclass(frozen=True)
class PrometheusEvidence:
    """How the Prometheus history was read: window, step, queries, series kept, and notes.

    The pool histories themselves become `Evidence.pools`; server-side series (from
    postgres_exporter) are kept here, keyed by the series' labels."""

    url: str
    start: datetime
    end: datetime
    step_seconds: float
    queries: tuple[str, ...] = ()
    series: int = 0
    instances: int = 0
    server_series: dict[str, tuple[SeriesPoint, ...]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class Evidence:
    """Everything one capture collected. `collected_at` is the analysis' notion of now."""

    collected_at: datetime
    started_at: datetime
    pooldoctor_version: str
    since: datetime | None = None
    until: datetime | None = None
    pools: tuple[PoolInstance, ...] = ()
    postgres: PostgresEvidence | None = None
    logs: tuple[LogFileEvidence, ...] = ()
    config: PoolConfig | None = None
    pgbouncers: tuple[PgBouncerEvidence, ...] = ()
    prometheus: PrometheusEvidence | None = None
    sources: tuple[SourceStatus, ...] = ()
    schema: str = EVIDENCE_SCHEMA
    code: tuple[CodeFlag, ...] = ()  # scan findings in the functions of named app frames


def evidence_to_json(evidence: Evidence) -> str:
    """Serialise evidence to its versioned JSON text."""
    return dumps_dataclass(evidence)


class EvidenceFormatError(ValueError):
    """An evidence file that is not valid pooldoctor evidence."""


def evidence_from_json(text: str) -> Evidence:
    """Parse evidence JSON, refusing unknown schema versions."""
    try:
        evidence = loads_dataclass(Evidence, text)
    except (ValueError, TypeError, KeyError) as exc:
        raise EvidenceFormatError(f"not a pooldoctor evidence file: {exc}") from exc
    if evidence.schema != EVIDENCE_SCHEMA:
        raise EvidenceFormatError(
            f"unsupported evidence schema {evidence.schema!r} (expected {EVIDENCE_SCHEMA!r})"
        )
    problem = _out_of_range(evidence)
    if problem:
        raise EvidenceFormatError(f"not a pooldoctor evidence file: {problem}")
    return evidence


def _out_of_range(evidence: Evidence) -> str | None:
    """The first value no collector would have written (negative counts, absurd ages)."""
    for pool in evidence.pools:
        for sample in pool.samples:
            for name in ("size", "checked_out", "checked_in", "waiting"):
                value = getattr(sample, name)
                if value is not None and not 0 <= value <= MAX_COUNT:
                    return f"{pool.url}: {name} {value} is out of range"
            for name in ("overflow", "max_overflow"):
                value = getattr(sample, name)
                if value is not None and not -MAX_COUNT <= value <= MAX_COUNT:
                    return f"{pool.url}: {name} {value} is out of range"
            if sample.timeout is not None and not 0 <= sample.timeout <= MAX_SECONDS:
                return f"{pool.url}: timeout {sample.timeout} is out of range"
            for holder in sample.holders:
                if not 0 <= holder.age_seconds <= MAX_SECONDS:
                    return f"{pool.url}: holder age {holder.age_seconds} s is out of range"
            for name, counter in sample.counters.items():
                if counter < 0:
                    return f"{pool.url}: counter {name} {counter} is negative"
    config = evidence.config
    if config is not None:
        for name in ("pool_timeout", "pool_recycle", "statement_timeout", "connect_timeout"):
            value = getattr(config, name)
            if value is not None and abs(value) > MAX_SECONDS:
                return f"config {name} {value} is out of range"
        for name in ("pool_size", "max_overflow", "workers"):
            value = getattr(config, name)
            if value is not None and not -1 <= value <= MAX_COUNT:
                return f"config {name} {value} is out of range"
    return None
