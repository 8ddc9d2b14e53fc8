"""The server's live views kept current by a child process (``metaledger serve``'s default).

Projecting an OpenLineage event into the views costs several times what
storing it costs (about 1 to 2 ms of CPU an event against 0.3 ms for the whole
request). Run on a thread of the server's process, that work holds the GIL
between its SQL statements and stalls the event loop: requests wait behind it
(a p99 of 0.2 to 1.4 s under load) and ingest halves. In a process of its own,
at a lower CPU priority, it takes only the CPU the requests leave: under a
burst the views fall behind (``/readyz`` reports the lag, reads show the views
as far as they got, never a half-applied event) and catch up in large, cheap
batches once the burst ends.

- :func:`follow_in_child` (the server side) starts the child, waits until it
  follows, restarts it (with a growing delay) if it dies, and stops it when
  cancelled: it closes the child's stdin, which the child takes as the order to
  stop (so a server killed outright leaves no orphan: the pipe closes with it),
  then SIGTERM, then SIGKILL. A child that cannot start (it fails before it
  says ``ready``) leaves the follower to a task of the server, as before.
- the child, ``python -m server.views_child`` (:mod:`server.views_child`),
  opens the same store and its views, says ``ready``, follows until its stdin
  closes or it gets SIGTERM or SIGINT. It runs in its own session: a Ctrl-C at
  the terminal reaches the server, which stops it in turn.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import anyio
import anyio.abc
from anyio.abc import TaskStatus

from eventstore.logs import child_log_arguments, get_logger
from projections import Views

__all__ = ["READY", "follow_in_child"]

#: What the child writes on stdout once it follows the log.
READY = b"ready"

log = get_logger("server.views")

#: How long a stopping child gets to finish (it rolls its transaction back) before SIGTERM,
#: and after SIGTERM before SIGKILL.
STOP_SECONDS = 10.0
#: The longest wait before restarting a child that died.
MAX_RESTART_DELAY = 30.0
#: How long a new child may take to say it follows (its catch-up is short: the
#: server caught the views up before starting it).
READY_SECONDS = 120.0


def _command() -> list[str]:
    return [sys.executable, "-m", "server.views_child", *child_log_arguments()]


def _environment(store_uri: str | None) -> dict[str, str]:
    # The URI travels in the environment, not the command line: a PostgreSQL DSN
    # may carry a password, and any user can read another's command lines.
    env = dict(os.environ)
    if store_uri is not None:
        env["METALEDGER_STORE"] = store_uri
    return env


async def _read_ready(process: anyio.abc.Process) -> bool:
    """Whether the child said ``ready`` (False: it ended, or wrote something else, first)."""
    assert process.stdout is not None
    received = b""
    while b"\n" not in received and len(received) < 256:
        try:
            received += await process.stdout.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return False
    return received.split(b"\n", 1)[0].strip() == READY


async def _stop(process: anyio.abc.Process) -> None:
    """Stop the child: close its stdin (its order to stop), then SIGTERM, then SIGKILL."""
    with anyio.CancelScope(shield=True):
        if process.stdin is not None:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await process.stdin.aclose()
        for escalate in (process.terminate, process.kill):
            with anyio.move_on_after(STOP_SECONDS):
                await process.wait()
                break
            with contextlib.suppress(ProcessLookupError):
                escalate()
        else:
            await process.wait()
        if process.stdout is not None:
            await process.stdout.aclose()


async def follow_in_child(
    store_uri: str | None,
    views: Views,
    stopping: anyio.Event,
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Keep ``views`` current from a child process until cancelled; see the module docstring.

    ``stopping`` set (the server is shutting down): a child that ends is not restarted.
    """
    command, env = _command(), _environment(store_uri)
    delay = 1.0
    started = False
    while True:
        try:
            process = await anyio.open_process(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=None,  # its log lines join the server's
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            if not started:
                log.warning("views_follower_in_process", reason=f"cannot start a process: {exc}")
                await views.follow(task_status=task_status)
                return
            log.error("views_follower_not_restarted", error=str(exc), retry_in=delay)
        else:
            ran_from = anyio.current_time()
            try:
                ready = False
                with anyio.move_on_after(READY_SECONDS):
                    ready = await _read_ready(process)
                if ready:
                    log.info("views_follower_started", pid=process.pid)
                    if not started:
                        started = True
                        task_status.started()
                    await process.wait()
            finally:
                await _stop(process)
            if stopping.is_set():
                await anyio.sleep_forever()  # ended by the shutdown: wait to be cancelled
            if not started:
                log.warning(
                    "views_follower_in_process",
                    reason=f"the views process ended (exit code {process.returncode}) or hung "
                    "before it started following; the server keeps the views itself",
                )
                await views.follow(task_status=task_status)
                return
            if anyio.current_time() - ran_from > 2 * MAX_RESTART_DELAY:
                delay = 1.0  # it ran a good while: not a crash loop
            log.error("views_follower_exited", code=process.returncode, restart_in=delay)
        await anyio.sleep(delay)
        delay = min(delay * 2, MAX_RESTART_DELAY)
