"""Throwaway servers: `with` starts one; leaving stops it and removes its directory."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path
from typing import Self

KILL_WAIT_SECONDS = 10.0  # after SIGKILL a process is gone within moments; bound the wait anyway


def find_binary(name: str, debian_path: Path, missing: type[RuntimeError]) -> Path:
    """A server binary on PATH, else at its Debian path; `missing` explains how to install it."""
    found = shutil.which(name)
    if found:
        return Path(found)
    if debian_path.is_file():
        return debian_path
    raise missing(
        f"{name} not found on PATH or at {debian_path}; install it "
        f"(Debian: apt-get install {name}) or run `make test`, which installs it as root"
    )


def end_process(
    process: subprocess.Popen[bytes] | None, sent: signal.Signals, grace: float
) -> None:
    """Ask a running process to exit with `sent`; kill it if it has not within `grace` seconds."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sent)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=KILL_WAIT_SECONDS)


class Throwaway:
    """A server under `root`: `launch()` on entering; `halt()` and delete `root` on leaving."""

    root: Path

    def launch(self) -> None:
        raise NotImplementedError

    def halt(self) -> None:
        raise NotImplementedError

    def cleanup(self) -> None:
        """Stop the server and remove its directory."""
        try:
            self.halt()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.launch()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()
