"""Running the application under uvicorn until SIGINT or SIGTERM (``metaledger serve``).

The address is bound and the ledger opened first (a port in use or a store
that cannot be opened fails as one error, before anything is served), then
uvicorn serves the application over them, with uvloop and
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
from .errors import ListenError
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

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start listening, then report the address (the port the OS chose for port 0)."""
        await super().startup(sockets)
        if self.started and self.servers and self.servers[0].sockets:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            self._on_listening(str(host), int(port))

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Stop as uvicorn does, and end the endless answers (the event streams)."""
        super().handle_exit(sig, frame)
        self._ledger.stopping.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop as uvicorn does; a forced stop (a second Ctrl-C) still ends the lifespan.

        uvicorn skips the lifespan's shutdown then, and the loop's teardown
        cancelled the task still waiting in it, which uvicorn logged as an error
        with a traceback. Ours does nothing on shutdown (the ledger closes
        after uvicorn returns), so it ends at once either way.
        """
        await super().shutdown(sockets)
        if self.force_exit:
            await self.lifespan.shutdown()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """SIGINT and SIGTERM stop the server gracefully, handled on the event loop.

        Installed with ``add_signal_handler``, replacing the CLI's Ctrl-C handler
        (which cancels everything at once) while serving; not re-raised after a
        clean stop, so the exit code is 0.
        """
        loop = asyncio.get_running_loop()
        handled = (signal.SIGINT, signal.SIGTERM)
        for sig in handled:
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)


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
    listener = _listen(config.host, config.port)
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
        await server.serve(sockets=[listener])


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, or ListenError saying why not (one line, no traceback).

    Bound here rather than by uvicorn, which logs the error and exits on its own.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock
