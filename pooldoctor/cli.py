"""The `pooldoctor` command line: parses, delegates to the command modules, sets exit codes."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from functools import cache
from typing import Any

import typer
from typer._click.exceptions import BadParameter, ClickException, NoArgsIsHelpError, UsageError

from pooldoctor import __version__
from pooldoctor.commands.helpfmt import MetavarCommand
from pooldoctor.exitcodes import ExitCode
from pooldoctor.interrupts import (
    CaptureInterrupted,
    Terminated,
    interrupt_exit_code,
    interrupt_name,
    sigterm_raises,
)
from pooldoctor.sanitize import sanitized_standard_streams

HELP_OPTIONS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
_CHOICE_ERROR = re.compile(
    r"(?:Value error, )?'(?P<value>[^']*)' is not one of (?P<choices>.+?)\.?$"
)


def summary(command: Callable[..., Any]) -> str:
    """A command's one-line summary for the command list: its docstring's first line, whole."""
    return (command.__doc__ or "").strip().splitlines()[0]


def _version_callback(value: bool) -> None:
    if value:
        print(f"pooldoctor {__version__}")
        raise typer.Exit(0)


def _root(
    version: bool = typer.Option(
        False,
        "-V",
        "--version",
        callback=_version_callback,
        is_eager=True,
        help="Show the version and exit.",
    ),
) -> None:
    """Diagnose database connection pool exhaustion from live evidence."""


def _new_app() -> typer.Typer:
    app = typer.Typer(
        name="pooldoctor",
        help="Diagnose database connection pool exhaustion from live evidence.",
        no_args_is_help=True,
        add_completion=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings=HELP_OPTIONS,
    )
    app.callback()(_root)
    return app


def _add(app: typer.Typer, name: str, command: Callable[..., Any]) -> None:
    app.command(name, short_help=summary(command), cls=MetavarCommand)(command)


@cache
def full_app() -> typer.Typer:
    """The whole command line (imports every command module)."""
    from pooldoctor.commands import alerts, capture, check, demo, diagnose, runbooks, scan, watch

    app = _new_app()
    _add(app, "diagnose", diagnose.diagnose_command)
    _add(app, "capture", capture.capture_command)
    _add(app, "watch", watch.watch_command)
    _add(app, "check", check.check_command)
    _add(app, "demo", demo.demo_command)
    _add(app, "scan", scan.scan_command)
    _add(app, "alerts", alerts.alerts_command)
    app.add_typer(
        runbooks.runbooks_app,
        name="runbooks",
        short_help="List and show the on-call runbooks.",
        context_settings=HELP_OPTIONS,
    )
    return app


@cache
def plugin_app() -> typer.Typer:
    """Only `check`: a monitoring plugin runs every minute, so it imports no other command."""
    from pooldoctor.commands import check

    app = _new_app()
    _add(app, "check", check.check_command)
    return app


def __getattr__(name: str) -> typer.Typer:
    if name == "app":  # built on first use, so `pooldoctor check` never imports the others
        return full_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def usage_message(exc: UsageError) -> str:
    """One line for a usage error; an invalid choice lists the valid ones."""
    message = exc.format_message()
    param = getattr(exc, "param", None)
    match = _CHOICE_ERROR.search(message)
    if isinstance(exc, BadParameter) and param is not None and match:
        name = param.opts[0] if getattr(param, "opts", None) else param.name
        choices = match["choices"].replace("'", "")
        return f"invalid {name} '{match['value']}': choose one of {choices}"
    return message


PLUGIN_COMMAND = "check"


def _is_plugin_call(argv: list[str]) -> bool:
    """True when running `pooldoctor check`: its errors are UNKNOWN lines, as plugins report.

    `--help` goes this way too: typer prints the same help, and an error before it (`--bogus -h`)
    is still a plugin answer."""
    return bool(argv) and argv[0] == PLUGIN_COMMAND


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, mapping usage errors to 64 and never printing a traceback.

    Everything printed goes through the outbound filter (secrets redacted, control characters
    stripped); SIGTERM ends the run like Ctrl-C, with 143.
    """
    args = sys.argv[1:] if argv is None else argv
    with sanitized_standard_streams(), sigterm_raises():
        code = _run_plugin(args) if _is_plugin_call(args) else _run(args)
    if argv is None:
        sys.exit(code)
    return code


def _run_plugin(args: list[str]) -> int:
    """`check` per the Monitoring Plugins guidelines: any failure is one UNKNOWN line, exit 3."""
    try:
        result = _run_check(args)
    except typer.Exit as exc:
        return exc.exit_code
    except (KeyboardInterrupt, Terminated, CaptureInterrupted) as exc:
        reason = interrupt_name(exc)
    except typer.Abort:
        reason = "interrupted"
    except UsageError as exc:
        reason = f"usage: {usage_message(exc)}"
    except ClickException as exc:
        reason = f"usage: {exc.format_message()}"
    except Exception as exc:
        if os.environ.get("POOLDOCTOR_DEBUG"):
            raise
        reason = f"internal error: {type(exc).__name__}: {exc}"
    else:
        return result if isinstance(result, int) else 0
    print(" ".join(f"POOLDOCTOR UNKNOWN - {reason}".split()))
    return int(ExitCode.UNKNOWN)


def _run_check(args: list[str]) -> Any:
    """`check` called directly when its arguments are plain (the usual monitoring-agent call,
    without building typer's validators), else parsed by typer."""
    from pooldoctor.commands.check import check_command
    from pooldoctor.commands.lightargs import parse_plain

    arguments = parse_plain(check_command, args[1:])
    if arguments is None:
        return plugin_app()(args=args, standalone_mode=False, prog_name="pooldoctor")
    return check_command(**arguments)


def _run(args: list[str]) -> int:
    """Every other command: usage errors exit 64, internal errors 70, one line each."""
    try:
        result = full_app()(args=args, standalone_mode=False, prog_name="pooldoctor")
    except NoArgsIsHelpError as exc:
        exc.show()
        code = int(ExitCode.USAGE)
    except UsageError as exc:
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        print(f"pooldoctor: error: {usage_message(exc)}{where}", file=sys.stderr)
        code = int(ExitCode.USAGE)
    except ClickException as exc:
        print(f"pooldoctor: error: {exc.format_message()}", file=sys.stderr)
        code = int(ExitCode.USAGE)
    except typer.Abort:
        print("pooldoctor: interrupted", file=sys.stderr)
        code = int(ExitCode.INTERRUPTED)
    except typer.Exit as exc:
        code = exc.exit_code
    except (KeyboardInterrupt, Terminated, CaptureInterrupted) as exc:
        print(f"pooldoctor: {interrupt_name(exc)}", file=sys.stderr)
        code = int(interrupt_exit_code(exc))
    except Exception as exc:
        if os.environ.get("POOLDOCTOR_DEBUG"):
            raise
        print(
            f"pooldoctor: internal error: {type(exc).__name__}: {exc} "
            "(set POOLDOCTOR_DEBUG=1 for a traceback, and please report it)",
            file=sys.stderr,
        )
        code = int(ExitCode.SOFTWARE)
    else:
        code = result if isinstance(result, int) else 0
    return code
