"""The `pooldoctor` command line: parses, delegates to the command modules, sets exit codes."""

from __future__ import annotations

import os
import sys

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

from pooldoctor import __version__
from pooldoctor.commands import alerts, capture, check, demo, diagnose, runbooks, scan, watch
from pooldoctor.exitcodes import ExitCode

app = typer.Typer(
    name="pooldoctor",
    help="Diagnose database connection pool exhaustion from live evidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command("diagnose")(diagnose.diagnose_command)
app.command("capture")(capture.capture_command)
app.command("check")(check.check_command)
app.command("watch")(watch.watch_command)
app.command("demo")(demo.demo_command)
app.command("scan")(scan.scan_command)
app.command("alerts")(alerts.alerts_command)
app.add_typer(runbooks.runbooks_app, name="runbooks")


def _version_callback(value: bool) -> None:
    if value:
        print(f"pooldoctor {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
) -> None:
    """Diagnose database connection pool exhaustion from live evidence."""


PLUGIN_COMMAND = "check"


def _is_plugin_call(argv: list[str]) -> bool:
    """True when running `pooldoctor check`: its errors are UNKNOWN lines, as plugins report."""
    return bool(argv) and argv[0] == PLUGIN_COMMAND and not {"-h", "--help"} & set(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, mapping usage errors to 64 and never printing a traceback."""
    args = sys.argv[1:] if argv is None else argv
    code = _run_plugin(args) if _is_plugin_call(args) else _run(args)
    if argv is None:
        sys.exit(code)
    return code


def _run_plugin(args: list[str]) -> int:
    """`check` per the Monitoring Plugins guidelines: any failure is one UNKNOWN line, exit 3."""
    try:
        result = app(args=args, standalone_mode=False, prog_name="pooldoctor")
    except typer.Exit as exc:
        return exc.exit_code
    except (KeyboardInterrupt, typer.Abort):
        reason = "interrupted"
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


def _run(args: list[str]) -> int:
    """Every other command: usage errors exit 64, internal errors 70, one line each."""
    try:
        result = app(args=args, standalone_mode=False, prog_name="pooldoctor")
    except NoArgsIsHelpError as exc:
        exc.show()
        code = int(ExitCode.USAGE)
    except UsageError as exc:
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        print(f"pooldoctor: error: {exc.format_message()}{where}", file=sys.stderr)
        code = int(ExitCode.USAGE)
    except ClickException as exc:
        print(f"pooldoctor: error: {exc.format_message()}", file=sys.stderr)
        code = int(ExitCode.USAGE)
    except typer.Abort:
        print("pooldoctor: interrupted", file=sys.stderr)
        code = int(ExitCode.INTERRUPTED)
    except typer.Exit as exc:
        code = exc.exit_code
    except KeyboardInterrupt:
        print("pooldoctor: interrupted", file=sys.stderr)
        code = int(ExitCode.INTERRUPTED)
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
