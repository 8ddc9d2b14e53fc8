"""``metaledger serve``: started as a user starts it, on a real port, over a real store."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx

from .server_process import running_server


class TestServing:
    """The process: it listens, answers probes, and stops cleanly."""

    def test_healthz_and_readyz_answer_and_sigterm_stops_cleanly(self, tmp_path: Path) -> None:
        with running_server(str(tmp_path / "store")) as server:
            assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
            ready = httpx.get(f"{server.url}/readyz")
            assert ready.status_code == 200
            assert ready.json()["status"] == "ready"
            assert server.stop(signal.SIGTERM) == 0
        assert "ledger_closed" in server.stderr()

    def test_a_non_loopback_address_without_tokens_is_refused(self, tmp_path: Path) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "cli", "--store", str(tmp_path / "s"), "serve",
             "--host", "0.0.0.0", "--port", "0"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 1
        assert "refusing to serve 0.0.0.0 without tokens" in done.stderr
        assert "Traceback" not in done.stderr
