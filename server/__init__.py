"""metaledger's HTTP server: an ASGI application over one store (``metaledger serve``).

- :mod:`server.app`: ``create_app(config)``, the lifespan (store, live views, follower);
- :mod:`server.state`: the ``Ledger`` every request reads (one query path, ``as_of``);
- :mod:`server.auth`: bearer tokens with scopes, stored hashed; the loopback rule;
- :mod:`server.bodies`: bounded request bodies (size, gzip inflation);
- :mod:`server.errors`: the error tree and the JSON error answers;
- :mod:`server.health`, :mod:`server.api`: the routes, gathered by :mod:`server.routes`.

Nothing in ``eventstore``, ``projections`` or ``cli`` imports this package,
except the ``serve`` and ``token`` commands, inside their functions.
"""

from __future__ import annotations

from .app import create_app, open_ledger
from .config import Limits, ServerConfig
from .errors import InsecureBindError, ServerError, TokenFileError
from .state import Ledger

__all__ = [
    "InsecureBindError",
    "Ledger",
    "Limits",
    "ServerConfig",
    "ServerError",
    "TokenFileError",
    "create_app",
    "open_ledger",
]
