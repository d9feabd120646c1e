"""A throwaway Prometheus server on 127.0.0.1 scraping given targets, for tests and benchmarks."""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pooldoctor.lab.portserver import PortServer
from pooldoctor.lab.throwaway import end_process, find_binary

DEBIAN_BINARY = Path("/usr/bin/prometheus")


class PrometheusUnavailable(RuntimeError):
    """The prometheus binary cannot be found."""


def find_prometheus() -> Path:
    """The prometheus binary: on PATH or Debian's /usr/bin/prometheus."""
    return find_binary("prometheus", DEBIAN_BINARY, PrometheusUnavailable)


@dataclass(frozen=True)
class ScrapeTarget:
    """One scrape target: host:port, path, and the `instance` label it gets."""

    address: str
    path: str = "/metrics"
    instance: str | None = None


@dataclass
class TempPrometheus(PortServer):
    """Prometheus with a temporary config and TSDB, scraping `targets` every `scrape_interval`."""

    targets: Sequence[ScrapeTarget]
    scrape_interval: str = "1s"
    job: str = "app"
    binary: Path = field(default_factory=find_prometheus)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pooldoctor-prom-")))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        groups = [
            {
                "targets": [target.address],
                "labels": {
                    "__metrics_path__": target.path,
                    **({"instance": target.instance} if target.instance else {}),
                },
            }
            for target in self.targets
        ]
        config = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": "1m",
            },
            "scrape_configs": [{"job_name": self.job, "static_configs": groups}],
        }
        path = self.root / "prometheus.yml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    def spawn(self) -> None:
        """Write the config and start Prometheus, its log in the root directory."""
        config = self.write_config()
        with (self.root / "prometheus.log").open("wb") as log:
            self.process = subprocess.Popen(
                [
                    str(self.binary),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.root / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=str(self.root),
            )

    def port_taken(self, failure: RuntimeError) -> bool:
        return "address already in use" in str(failure)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                log = (self.root / "prometheus.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"prometheus exited: {log}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("prometheus did not become ready")
            time.sleep(0.1)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result list."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=10) as response:
            document = json.loads(response.read())
        result: list[dict[str, Any]] = document["data"]["result"]
        return result

    def wait_for_samples(self, promql: str, at_least: float, timeout: float = 60) -> None:
        """Wait until the instant value of `promql` reaches `at_least` (e.g. a sample count)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(promql)
            if result and float(result[0]["value"][1]) >= at_least:
                return
            time.sleep(0.2)
        raise TimeoutError(f"{promql} did not reach {at_least}")

    def stop(self) -> None:
        end_process(self.process, signal.SIGTERM, grace=15)
