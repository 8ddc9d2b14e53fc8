"""Running the application under uvicorn until SIGINT or SIGTERM (``metaledger serve``).

The ledger is opened first (a store that cannot be opened fails before any
port is bound), then uvicorn serves the application over it, with uvloop and
httptools when installed (``uvicorn[standard]``; several times the requests a
second of plain asyncio and h11). On SIGINT or SIGTERM uvicorn stops
accepting, lets in-flight requests finish (endless answers, the event stream,
end at once: the ledger's ``stopping`` is set), then the ledger closes, which
commits every queued append. A second SIGINT forces the exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Generator, Sequence
from types import FrameType

import uvicorn
from starlette.routing import BaseRoute

from .app import create_app, open_ledger
from .config import ServerConfig
from .state import Ledger

__all__ = ["serve"]

#: How long in-flight requests get to finish on shutdown before they are cancelled.
GRACEFUL_SECONDS = 30


class _Server(uvicorn.Server):
    """uvicorn's server, telling the ledger when it starts stopping and when it listens."""

    def __init__(
        self, config: uvicorn.Config, ledger: Ledger, on_listening: Callable[[str, int], None]
    ) -> None:
        super().__init__(config)
        self._ledger = ledger
        self._on_listening = on_listening
        self._loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start listening, then report the address (the port the OS chose for port 0)."""
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)
        if self.started and self.servers and self.servers[0].sockets:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            self._on_listening(str(host), int(port))

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Stop as uvicorn does, and end the endless answers (called in a signal handler)."""
        super().handle_exit(sig, frame)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._ledger.stopping.set)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """uvicorn's handlers, without re-raising the signal afterwards: a clean stop exits 0."""
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


async def serve(
    config: ServerConfig,
    on_listening: Callable[[str, int], None],
    *,
    routes: Sequence[BaseRoute] | None = None,
) -> None:
    """Serve the store ``config`` names at ``config.host:config.port`` until told to stop.

    ``on_listening(host, port)`` is called once the socket listens; ``routes``
    replaces the default routes (see :func:`server.app.create_app`).
    """
    async with open_ledger(config) as ledger:
        app = create_app(config, ledger=ledger, routes=routes)
        server = _Server(
            uvicorn.Config(
                app,
                host=config.host,
                port=config.port,
                loop="none",  # the running loop (uvloop when anyio was asked for it)
                http="auto",  # httptools when installed, else h11
                lifespan="on",
                log_config=None,  # the entry point configured logging
                access_log=False,  # the AccessLog middleware writes one structured line
                server_header=False,
                timeout_graceful_shutdown=GRACEFUL_SECONDS,
            ),
            ledger,
            on_listening,
        )
        await server.serve()
