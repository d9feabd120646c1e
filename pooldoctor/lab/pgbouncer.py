"""A throwaway PgBouncer on 127.0.0.1 in front of a TempCluster, for tests and benchmarks."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from pooldoctor.lab.cluster import SERVER_USER, TempCluster
from pooldoctor.lab.portserver import PortServer
from pooldoctor.lab.throwaway import end_process, find_binary

ADMIN_USER = "pgbouncer_admin"
STATS_USER = "pgbouncer_stats"
DEBIAN_BINARY = Path("/usr/sbin/pgbouncer")


class PgBouncerUnavailable(RuntimeError):
    """The pgbouncer binary cannot be found."""


def find_pgbouncer() -> Path:
    """The pgbouncer binary: on PATH or Debian's /usr/sbin/pgbouncer."""
    return find_binary("pgbouncer", DEBIAN_BINARY, PgBouncerUnavailable)


@dataclass
class TempPgBouncer(PortServer):
    """PgBouncer with its own ini, auth file and log in a temporary directory."""

    cluster: TempCluster
    settings: Mapping[str, str] = field(default_factory=dict)
    database_options: str = ""
    binary: Path = field(default_factory=find_pgbouncer)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pooldoctor-pgb-")))

    @property
    def logfile(self) -> Path:
        return self.root / "pgbouncer.log"

    def dsn(self, user: str = SERVER_USER, dbname: str = "postgres", **params: str) -> str:
        """A key=value DSN through PgBouncer."""
        parts = {
            "host": "127.0.0.1",
            "port": str(self.port),
            "user": user,
            "dbname": dbname,
            "connect_timeout": "5",
            **params,
        }
        return " ".join(f"{key}={value}" for key, value in parts.items())

    def admin_dsn(self, user: str = STATS_USER) -> str:
        """The admin console DSN (database `pgbouncer`), read-only with the stats user."""
        return self.dsn(user=user, dbname="pgbouncer")

    def write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        users = (SERVER_USER, ADMIN_USER, STATS_USER)
        (self.root / "userlist.txt").write_text(
            "".join(f'"{user}" ""\n' for user in users), encoding="utf-8"
        )
        options = f" {self.database_options}" if self.database_options else ""
        merged = {
            "listen_addr": "127.0.0.1",
            "listen_port": str(self.port),
            "unix_socket_dir": "",
            "auth_type": "trust",
            "auth_file": str(self.root / "userlist.txt"),
            "admin_users": ADMIN_USER,
            "stats_users": STATS_USER,
            "pool_mode": "transaction",
            "default_pool_size": "5",
            "logfile": str(self.logfile),
            "pidfile": str(self.root / "pgbouncer.pid"),
            "ignore_startup_parameters": "extra_float_digits,options",
            **self.settings,
        }
        lines = [
            "[databases]",
            f"* = host=127.0.0.1 port={self.cluster.port}{options}",
            "[pgbouncer]",
            *(f"{key} = {value}" for key, value in merged.items()),
        ]
        (self.root / "pgbouncer.ini").write_text("\n".join(lines) + "\n", encoding="utf-8")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            for path in (self.root, *self.root.iterdir()):
                shutil.chown(path, SERVER_USER, SERVER_USER)

    def spawn(self) -> None:
        """Write the ini and start PgBouncer (as the postgres user when root)."""
        self.logfile.unlink(missing_ok=True)
        self.write_config()
        command = [str(self.binary), str(self.root / "pgbouncer.ini")]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command[1:1] = ["-u", SERVER_USER]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=str(self.root)
        )

    def port_taken(self, failure: RuntimeError) -> bool:
        return "Address already in use" in self.log_tail()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {self.log_tail()}")
            try:
                with psycopg.connect(self.admin_dsn(ADMIN_USER), autocommit=True):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def log_tail(self) -> str:
        try:
            return self.logfile.read_text(encoding="utf-8", errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        end_process(self.process, signal.SIGINT, grace=10)  # SIGINT: PgBouncer's safe shutdown
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
