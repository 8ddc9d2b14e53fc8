"""Bearer tokens: each with a name and scopes (``ingest``, ``read``), stored hashed.

The token file (``--token-file``) is JSON written by ``metaledger token
create``; it holds for each token its name, scopes, creation time and the
SHA-256 of the secret, never the secret itself (printed once, at creation).
A fast hash is enough, and a slow one would be wrong here: the secrets are 256
random bits (nothing to guess from a leaked hash), and every request checks
one, so a password hash's deliberate cost would fall on every ingest.

A request presents ``Authorization: Bearer <secret>`` (what the OpenLineage
clients send with ``auth.type: api_key``). Missing or unknown: 401; known
but without the scope the route needs: 403. A server without tokens checks
nothing; it serves loopback only (see :func:`check_bind`).
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import os
import secrets
import tempfile
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection

from .errors import InsecureBindError, TokenExistsError, TokenFileError, TokenNotFoundError

__all__ = [
    "SCOPES",
    "Scope",
    "TokenRecord",
    "TokenTable",
    "check_bind",
    "is_loopback",
    "new_secret",
    "require_scope",
]

Scope = Literal["ingest", "read"]
#: Every scope: ``ingest`` may write events, ``read`` may read the API and the stream.
SCOPES: tuple[Scope, ...] = ("ingest", "read")
#: Secrets start with this, so a leaked one is recognisable (secret scanners, logs).
SECRET_PREFIX = "mlk_"
_FILE_VERSION = 1


class TokenRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One token as the file stores it: never the secret, only its SHA-256."""

    name: str
    scopes: tuple[Scope, ...]
    sha256: str
    created_at: datetime


class _TokenFile(msgspec.Struct, frozen=True, kw_only=True):
    version: int = _FILE_VERSION
    tokens: tuple[TokenRecord, ...] = ()


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_secret() -> str:
    """A new token secret: 256 random bits, URL-safe, with a recognisable prefix."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


class TokenTable:
    """The tokens a server accepts, looked up by the hash of the presented secret."""

    def __init__(self, records: Iterable[TokenRecord] = ()) -> None:
        self.records: tuple[TokenRecord, ...] = tuple(records)
        self._by_digest: Mapping[str, TokenRecord] = {r.sha256: r for r in self.records}

    def __bool__(self) -> bool:
        """Whether any token is configured (else the server checks nothing)."""
        return bool(self.records)

    def find(self, secret: str) -> TokenRecord | None:
        """The token whose secret this is, or None."""
        # Comparing digests (not secrets) leaks nothing useful through timing.
        return self._by_digest.get(_digest(secret))

    @classmethod
    def load(cls, path: Path) -> TokenTable:
        """Read a token file; a missing file is an empty table."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return cls()
        except OSError as exc:
            raise TokenFileError(f"{path}: cannot read the token file: {exc.strerror}") from exc
        try:
            parsed = msgspec.json.decode(data, type=_TokenFile)
        except msgspec.DecodeError as exc:
            raise TokenFileError(f"{path}: not a metaledger token file: {exc}") from exc
        if parsed.version != _FILE_VERSION:
            raise TokenFileError(f"{path}: token file version {parsed.version} is not known")
        return cls(parsed.tokens)

    def with_token(self, name: str, scopes: Iterable[Scope]) -> tuple[TokenTable, str]:
        """This table plus a new token named ``name``, and its secret (shown once)."""
        if any(r.name == name for r in self.records):
            raise TokenExistsError(f"a token named {name!r} exists already; revoke it first")
        secret = new_secret()
        record = TokenRecord(
            name=name,
            scopes=tuple(s for s in SCOPES if s in set(scopes)),
            sha256=_digest(secret),
            created_at=datetime.now(UTC),
        )
        return TokenTable([*self.records, record]), secret

    def without(self, name: str) -> TokenTable:
        """This table less the token named ``name``."""
        if not any(r.name == name for r in self.records):
            names = [r.name for r in self.records]
            raise TokenNotFoundError("token", name, difflib.get_close_matches(name, names, n=1))
        return TokenTable(r for r in self.records if r.name != name)

    def save(self, path: Path) -> None:
        """Write the table to ``path`` whole (a new file replaces the old), mode 0600."""
        data = msgspec.json.format(msgspec.json.encode(_TokenFile(tokens=self.records)))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(data + b"\n")
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise TokenFileError(f"{path}: cannot write the token file: {exc.strerror}") from exc


def _presented(connection: HTTPConnection) -> str | None:
    header = connection.headers.get("authorization")
    if header is None:
        return None
    scheme, _, secret = header.partition(" ")
    return secret.strip() if scheme.lower() == "bearer" and secret.strip() else None


def require_scope(connection: HTTPConnection, scope: Scope) -> None:
    """Refuse the request unless it carries a token with ``scope`` (no-op without tokens).

    Raises ``HTTPException`` 401 (no token, or an unknown one) or 403 (a token
    without that scope).
    """
    tokens: TokenTable = connection.app.state.ledger.config.tokens
    if not tokens:
        return
    secret = _presented(connection)
    if secret is None:
        raise HTTPException(
            401, "this server needs a bearer token", headers={"WWW-Authenticate": "Bearer"}
        )
    record = tokens.find(secret)
    if record is None:
        raise HTTPException(
            401,
            "the bearer token is not known",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    if scope not in record.scopes:
        raise HTTPException(403, f"token {record.name!r} lacks the {scope!r} scope")
    connection.scope["metaledger.token"] = record.name


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, tokens: TokenTable, *, insecure: bool) -> None:
    """Refuse to serve a non-loopback address without tokens, unless ``insecure``."""
    if tokens or insecure or is_loopback(host):
        return
    raise InsecureBindError(
        f"refusing to serve {host} without tokens: anyone who can reach it could write "
        "and read the store. Give --token-file (create tokens with `metaledger token "
        "create`), bind 127.0.0.1, or pass --insecure"
    )
