"""What a server runs with: the store, where it listens, who may call it, its limits.

One frozen value, built by ``metaledger serve`` from its options (or by a test),
handed to :func:`server.app.create_app` and kept on the ``Ledger`` for every
request to read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .auth import TokenTable

__all__ = ["DEFAULT_PORT", "Limits", "LogWriter", "ServerConfig", "ViewsFollower"]

#: Who keeps the live views current: a child process (default) or a task of the server.
ViewsFollower = Literal["process", "inline"]
#: Who commits a SQLite store's appends: a child process (default) or a thread of the server.
LogWriter = Literal["process", "thread"]

#: The port ``metaledger serve`` listens on unless told (Marquez's default too).
DEFAULT_PORT = 5000

_MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """The bounds on what one request may bring (refused with 413 beyond them).

    ``max_body_bytes`` bounds the body as sent (compressed or not);
    ``max_decompressed_bytes`` bounds a ``Content-Encoding: gzip`` body once
    inflated (a gzip bomb stops there); ``max_batch`` bounds the events of one
    batch request.
    """

    max_body_bytes: int = 8 * _MIB
    max_decompressed_bytes: int = 32 * _MIB
    max_batch: int = 1000


@dataclass(frozen=True)
class ServerConfig:
    """A server's configuration: the store, the address, the tokens, the limits."""

    #: The store URI (as ``--store``); None: ``$METALEDGER_STORE``, else the default.
    store_uri: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    #: The tokens callers must present; empty: no auth (loopback only).
    tokens: TokenTable = field(default_factory=TokenTable)
    limits: Limits = field(default_factory=Limits)
    #: ``/readyz`` answers 503 while a projection is more than this many positions behind.
    ready_lag: int = 1000
    #: Serve a non-loopback address without tokens (``--insecure``).
    insecure: bool = False
    #: Log one structured line per request (``--no-access-log`` turns it off).
    access_log: bool = True
    #: ``process``: a child process keeps the views current (server/views_process.py),
    #: so their upkeep never stalls the requests; ``inline``: a task of the server does.
    views_follower: ViewsFollower = "process"
    #: ``process``: a SQLite store's appends are committed by a child process
    #: (eventstore/writer_process.py), whose commits never wait for the busy
    #: event loop's GIL; ``thread``: by a thread of the server. PostgreSQL
    #: stores always commit from the event loop.
    log_writer: LogWriter = "process"
