"""Stable process exit codes (Nagios-style for diagnose; 64 for usage errors)."""

from enum import IntEnum


class ExitCode(IntEnum):
    """What `pooldoctor` returns to the shell; documented in docs/cli.md."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3
    USAGE = 64
    INPUT = 65
    INTERRUPTED = 130
