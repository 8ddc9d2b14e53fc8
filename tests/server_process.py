"""Start ``metaledger serve`` as a user runs it, on a port the OS picks, for a test.

    with running_server(store_uri) as server:
        httpx.get(f"{server.url}/healthz")

The server runs in a subprocess (``python -m cli --store URI serve --port 0``);
its stderr is read by a thread into ``server.lines`` (so the pipe never fills
with access-log lines), the URL comes from the line ``metaledger: serving
http://HOST:PORT``, and the block starts once ``/healthz`` answers. Leaving the
block stops the server with SIGTERM (SIGKILL if it does not stop in time).
Nothing here sleeps to wait: every wait is on a condition, with a timeout.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import httpx

__all__ = ["ServerProcess", "running_server"]

_SERVING = re.compile(r"^metaledger: serving (http://\S+)$")
#: How long a server gets to start (open the store, catch up, listen) and to stop.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


@dataclass
class ServerProcess:
    """A running ``metaledger serve``: its base URL, process and stderr lines so far."""

    process: subprocess.Popen[bytes]
    url: str = ""
    lines: list[str] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def wait_for_line(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match[str]:
        """The first stderr line matching ``pattern``, waiting for it to be written."""
        compiled = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    found = compiled.search(line)
                    if found:
                        return found
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.process.poll() is not None and not self._reading):
                    raise AssertionError(
                        f"no stderr line matches {pattern!r}; stderr so far:\n" + self.stderr()
                    )
                self._changed.wait(min(remaining, 0.5))

    def stderr(self) -> str:
        """Everything the server wrote to stderr so far."""
        with self._changed:
            return "\n".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Send ``sig``, wait for the exit (SIGKILL after ``timeout``); the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self._reader.join(timeout)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return self.process.returncode

    def _read(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._reading = False
            self._changed.notify_all()

    def _start_reading(self) -> None:
        self._reading = True
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5) as client:
        while True:
            with contextlib.suppress(httpx.TransportError):
                if client.get(f"{url}/healthz").status_code == 200:
                    return
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{url}/healthz never answered 200")
            # A refused connection returns at once: pace the retries a little.
            threading.Event().wait(0.05)


@contextlib.contextmanager
def running_server(
    store_uri: str,
    *,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Iterator[ServerProcess]:
    """``metaledger serve --port 0`` on ``store_uri`` for the block; stopped with SIGTERM."""
    command = [
        sys.executable, "-m", "cli", "--store", store_uri, "serve", "--port", "0", *extra_args
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    server = ServerProcess(process)
    server._start_reading()
    try:
        found = server.wait_for_line(_SERVING.pattern)
        server.url = found.group(1)
        _wait_healthy(server.url, process, START_TIMEOUT)
        yield server
    finally:
        server.stop()
