"""Which server processes of a throwaway cluster may hold a client slot, read from /proc.

pg_stat_activity cannot answer this: a closing or refused backend leaves pg_stat_activity
before it gives its slot (PGPROC) back, and a refused one never appears there at all. A
process that has exited has released its slot, so the postmaster's children are the truth.
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection
from pathlib import Path

import pytest

from pooldoctor.lab.cluster import TempCluster

WAIT_SECONDS = 10.0
PROC = Path("/proc")
# A client backend's title: "postgres: [cluster: ]user database host(port) activity". Server
# processes with slots of their own (checkpointer, io workers, autovacuum, ...) read otherwise.
CLIENT_TITLE = re.compile(r"^postgres: (?:[^:]+: )?\S+ \S+ (?:\[local\]|\S+\(\d+\))")


def _postmaster_pid(cluster: TempCluster) -> int:
    return int((cluster.datadir / "postmaster.pid").read_text().split("\n", 1)[0])


def _parent_and_title(pid_dir: Path) -> tuple[int, str] | None:
    try:
        stat = (pid_dir / "stat").read_text()
        cmdline = (pid_dir / "cmdline").read_bytes()
    except OSError:  # exited while we looked
        return None
    state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
    if state == "Z":  # exited, slot released, not yet reaped
        return None
    return int(ppid), cmdline.replace(b"\0", b" ").decode(errors="replace").strip()


def client_backends(cluster: TempCluster) -> set[int]:
    """Pids of the postmaster's children that are (or are becoming) client backends.

    A child just forked still carries the postmaster's own title: it counts too, since it may
    be a connection that has not said who it is yet.
    """
    postmaster = _postmaster_pid(cluster)
    postmaster_title = _parent_and_title(PROC / str(postmaster))
    found: set[int] = set()
    for pid_dir in PROC.iterdir():
        if not pid_dir.name.isdigit():
            continue
        seen = _parent_and_title(pid_dir)
        if seen is None or seen[0] != postmaster:
            continue
        untitled = postmaster_title is not None and seen[1] == postmaster_title[1]
        if untitled or CLIENT_TITLE.match(seen[1]):
            found.add(int(pid_dir.name))
    return found


def wait_for_backends(cluster: TempCluster, held: Collection[int] = ()) -> None:
    """Wait until the only client backends are `held`: every closed or refused one has exited."""
    deadline = time.monotonic() + WAIT_SECONDS
    while (current := client_backends(cluster)) != set(held):
        if time.monotonic() > deadline:
            pytest.fail(f"client backends {sorted(current)} did not settle to {sorted(held)}")
        time.sleep(0.02)
