"""A throwaway server process on a port chosen free just before it starts, chosen again if taken."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

from pooldoctor.lab.cluster import PORT_ATTEMPTS, free_port
from pooldoctor.lab.throwaway import Throwaway


@dataclass
class PortServer(Throwaway):
    """A server process on 127.0.0.1:`port`; subclasses say how to spawn it and when it is up."""

    port: int = field(default_factory=free_port, kw_only=True)
    process: subprocess.Popen[bytes] | None = field(default=None, kw_only=True)

    def spawn(self) -> None:
        """Write the configuration for `port` and start the process (`self.process`)."""
        raise NotImplementedError

    def wait_ready(self) -> None:
        """Return once the server answers; RuntimeError when the process exited."""
        raise NotImplementedError

    def port_taken(self, failure: RuntimeError) -> bool:
        """True when the process exited because another process bound `port` first."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        """Spawn and wait until ready; on a port another process bound after it was chosen,
        choose another."""
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self.spawn()
            try:
                self.wait_ready()
                return
            except RuntimeError as failure:
                if attempt == PORT_ATTEMPTS or not self.port_taken(failure):
                    raise
            self.stop()
            self.port = free_port()

    def launch(self) -> None:
        self.start()

    def halt(self) -> None:
        self.stop()
