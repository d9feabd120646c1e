"""Stable process exit codes (Nagios-style for diagnose; 64 for usage errors)."""

from enum import IntEnum

from pooldoctor.findings import Status


class ExitCode(IntEnum):
    """What `pooldoctor` returns to the shell; the CLI reference lists EXIT_CODE_MEANINGS."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3
    USAGE = 64
    INPUT = 65
    SOFTWARE = 70
    CANNOT_WRITE = 73
    INTERRUPTED = 130
    TERMINATED = 143


EXIT_CODE_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "ok: no warning or critical finding (`capture`: at least one source collected; "
    "`scan`: no finding)",
    ExitCode.WARNING: "warning: the top finding is a warning (`scan`: findings reported)",
    ExitCode.CRITICAL: "critical: at least one critical finding",
    ExitCode.UNKNOWN: "unknown: nothing could be collected from any source",
    ExitCode.USAGE: "usage error: unknown or invalid option, no sources given (`check` answers "
    "a usage error with an UNKNOWN line and 3, as monitoring plugins do)",
    ExitCode.INPUT: "input error: a file pooldoctor must read (evidence bundle, runbook) is "
    "missing or malformed",
    ExitCode.SOFTWARE: "internal error: a bug in pooldoctor (one line; POOLDOCTOR_DEBUG=1 shows "
    "the traceback)",
    ExitCode.CANNOT_WRITE: "output error: --out could not be written (an existing file where a "
    "directory is needed, a read-only file system, a dangling symlink, another pooldoctor "
    "writing the same directory)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C / SIGINT): `capture` and `diagnose` keep what was "
    "collected. Not `watch`: Ctrl-C is how a watch is left, like `q` (its record is written and "
    "it exits with the last round's status), nor `check` (an UNKNOWN line and 3)",
    ExitCode.TERMINATED: "terminated (SIGTERM): `capture` and `diagnose` keep what was collected; "
    "`watch` and `check` end as on Ctrl-C",
}

STATUS_EXIT: dict[Status, ExitCode] = {
    Status.OK: ExitCode.OK,
    Status.WARNING: ExitCode.WARNING,
    Status.CRITICAL: ExitCode.CRITICAL,
    Status.UNKNOWN: ExitCode.UNKNOWN,
}
