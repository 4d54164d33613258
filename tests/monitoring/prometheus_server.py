"""A real Prometheus server (Debian's ``prometheus``) for one test module: a throwaway configuration and
data directory, loopback only, stopped (SIGTERM, then SIGKILL) within a bound. Never the system service.

Readiness and scrapes are polled with a deadline. Prometheus applies new targets on its scrape manager's
five-second tick, so the first scrape comes a few seconds after the start: start it once per module.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from harness.ports import free_port
from tests.monitoring.rule_files import REQUIRED_BY
from tests.support.programs import require_program

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
T = TypeVar("T")


def poll(predicate: Callable[[], T], timeout: float, message: Callable[[], str], interval: float = 0.2) -> T:
    """``predicate()`` once it is truthy; AssertionError with ``message()`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true within {timeout}s: {message()}")
        time.sleep(interval)


@dataclass
class PrometheusServer:
    directory: Path
    scrape_configs: list[dict[str, Any]]
    rule_file: dict[str, Any] | None = None  # a plain ``groups:`` document, evaluated every second
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "prometheus.log"

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> None:
        binary = require_program("prometheus", REQUIRED_BY)
        self.directory.mkdir(parents=True, exist_ok=True)
        document: dict[str, Any] = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}}
        if self.rule_file is not None:
            rules = self.directory / "rules.yaml"
            rules.write_text(yaml.safe_dump(self.rule_file, sort_keys=False))
            document["rule_files"] = [str(rules)]
        document["scrape_configs"] = self.scrape_configs
        config = self.directory / "prometheus.yml"
        config.write_text(yaml.safe_dump(document, sort_keys=False))
        self.port = free_port()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        with httpx.Client(timeout=2.0) as http:

            def ready() -> bool:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"prometheus exited with {self.process.returncode}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    return http.get(f"{self.url}/-/ready").status_code == 200
                return False

            poll(ready, START_TIMEOUT_SECONDS, lambda: f"prometheus not ready:\n{self.log_tail()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)

    # The HTTP API ------------------------------------------------------------------------------------------

    def _get(self, path: str, **params: Any) -> Any:
        with httpx.Client(base_url=self.url, timeout=10.0) as http:
            response = http.get(path, params=params)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expression: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query: [{"metric": {labels}, "value": [time, "value"]}, ...]."""
        params: dict[str, Any] = {"query": expression}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._get("/api/v1/query", **params)
        assert data["resultType"] == "vector", f"{expression}: {data['resultType']}"
        return list(data["result"])

    def label_values(self, label: str, selector: str) -> list[str]:
        params = {"match[]": selector} if selector else {}
        return list(self._get(f"/api/v1/label/{label}/values", **params))

    def targets(self) -> list[dict[str, Any]]:
        return list(self._get("/api/v1/targets")["activeTargets"])

    def wait_for_scrapes_after(self, moment: float, timeout: float = 30.0) -> None:
        """Until every target has been scraped successfully twice after ``moment`` (a Unix time), so that
        what happened before it is in the data and rate() has two samples since."""
        interval = min(float(config["scrape_interval"].rstrip("s")) for config in self.scrape_configs)

        def scraped() -> bool:
            targets = self.targets()
            return bool(targets) and all(
                target["health"] == "up" and _unix_time(target["lastScrape"]) > moment + interval
                for target in targets
            )

        poll(scraped, timeout, lambda: f"targets not scraped after {moment}: {self.targets()}")


def _unix_time(rfc3339: str) -> float:
    """A time as Prometheus writes it (``2026-12-07T03:53:27.43612616Z``: nanoseconds, beyond Python)."""
    assert rfc3339.endswith("Z"), rfc3339
    whole, _, fraction = rfc3339[:-1].partition(".")
    return datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp() + float(f"0.{fraction or 0}")
