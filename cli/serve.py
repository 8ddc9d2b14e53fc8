"""``metaledger serve`` (the HTTP server) and ``metaledger token`` (its bearer tokens).

The server lives in the ``server`` package, imported inside the command
functions only: nothing else in the CLI loads it, and ``--help`` stays quick.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from .context import app
from .errors import CLIError
from .input_limits import BoundedInt
from .output import Format, emit, output_options, print_table, say

__all__ = ["serve", "token"]

_TOKEN_FILE_HELP = "The token file (JSON, secrets stored hashed) [default: $METALEDGER_TOKEN_FILE]."


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=5000,
    show_default=True,
    help="The port to listen on; 0 lets the system choose (printed once listening).",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="METALEDGER_TOKEN_FILE",
    help="Require bearer tokens from this file (`metaledger token create` makes them). "
    "[default: $METALEDGER_TOKEN_FILE; without tokens only loopback is served]",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Serve a non-loopback address without tokens: anyone reaching it may read and write.",
)
@click.option(
    "--max-body",
    "max_body",
    type=BoundedInt(1),
    default=8 * 1024 * 1024,
    show_default=True,
    metavar="BYTES",
    help="Refuse (413) request bodies larger than this as sent.",
)
@click.option(
    "--max-inflated",
    "max_inflated",
    type=BoundedInt(1),
    default=32 * 1024 * 1024,
    show_default=True,
    metavar="BYTES",
    help="Refuse (413) gzip bodies inflating to more than this.",
)
@click.option(
    "--max-batch",
    type=BoundedInt(1),
    default=1000,
    show_default=True,
    metavar="N",
    help="Refuse (413) requests of more events than this.",
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="Log one structured line per request on stderr (each costs some 0.1 ms).",
)
@click.option(
    "--ready-lag",
    type=BoundedInt(0),
    default=1000,
    show_default=True,
    metavar="N",
    help="/readyz fails while a view is more than N positions behind the log.",
)
@click.option(
    "--views-follower",
    type=click.Choice(["process", "inline"]),
    default="process",
    show_default=True,
    help="Who keeps the views current: a child process at a lower CPU priority, so their "
    "upkeep never stalls requests (under a burst they fall behind and catch up after; "
    "/readyz reports the lag), or a task of the server process.",
)
@click.option(
    "--log-writer",
    type=click.Choice(["process", "thread"]),
    default="process",
    show_default=True,
    help="Who commits a SQLite store's appends: a child process, whose commits never wait "
    "for the busy server's interpreter lock, or a thread of the server process. "
    "(PostgreSQL commits in the database server either way.)",
)
def serve(
    host: str,
    port: int,
    token_file: Path | None,
    insecure: bool,
    max_body: int,
    max_inflated: int,
    max_batch: int,
    access_log: bool,
    ready_lag: int,
    views_follower: str,
    log_writer: str,
) -> None:
    """Serve the store over HTTP: OpenLineage ingest, the read API, a live event stream.

    Opens (creating if needed) the store, keeps its views current in the
    background and serves until SIGINT or SIGTERM, then lets in-flight requests
    finish and commits queued appends before exiting. Once listening it prints
    `metaledger: serving http://HOST:PORT` on stderr, then one log line per
    request. Without --token-file it serves loopback addresses only (refusing
    others unless --insecure); with it every request but /healthz and /readyz
    needs `Authorization: Bearer <token>` of the right scope. See docs/server.md.

    Example: metaledger serve --port 5000 --token-file ~/.config/metaledger/tokens.json
    """
    import anyio

    from server.auth import TokenTable, check_bind
    from server.config import Limits, ServerConfig
    from server.serving import serve as run_server

    from .interrupts import run_interruptibly

    context = app()
    tokens = TokenTable.load(token_file) if token_file is not None else TokenTable()
    if token_file is not None and not tokens:
        raise CLIError(
            f"{token_file}: holds no tokens; create one with `metaledger token create NAME "
            f"--scope ingest --token-file {token_file}`"
        )
    check_bind(host, tokens, insecure=insecure)
    config = ServerConfig(
        store_uri=context.store_uri,
        host=host,
        port=port,
        tokens=tokens,
        limits=Limits(
            max_body_bytes=max_body, max_decompressed_bytes=max_inflated, max_batch=max_batch
        ),
        ready_lag=ready_lag,
        insecure=insecure,
        access_log=access_log,
        views_follower=views_follower,  # type: ignore[arg-type]
        log_writer=log_writer,  # type: ignore[arg-type]
    )
    from eventstore.logs import configure_logging

    # A server logs each request: info at least, more with -v.
    configure_logging(
        logging.DEBUG if context.verbose > 1 else logging.INFO,
        "json" if context.log_format == "json" else "text",
    )

    def listening(bound_host: str, bound_port: int) -> None:
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        click.echo(f"metaledger: serving http://{shown}:{bound_port}", err=True)

    anyio.run(
        run_interruptibly,
        run_server,
        config,
        listening,
        backend_options={"use_uvloop": _has_uvloop()},
    )


def _has_uvloop() -> bool:
    import importlib.util

    return importlib.util.find_spec("uvloop") is not None


@click.group()
def token() -> None:
    """Create, list and revoke the server's bearer tokens.

    `metaledger serve --token-file F` accepts the tokens of F.

    Example: metaledger token create airflow --scope ingest --token-file tokens.json
    """


def _token_file(path: Path | None) -> Path:
    if path is None:
        raise click.UsageError("give --token-file FILE (or set METALEDGER_TOKEN_FILE)")
    return path


def _token_file_option(function: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--token-file",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="METALEDGER_TOKEN_FILE",
        help=_TOKEN_FILE_HELP,
    )(function)


@token.command("create")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    type=click.Choice(["ingest", "read"]),
    multiple=True,
    required=True,
    help="What the token may do: ingest (write events), read (the read API, the stream). "
    "Repeat for both.",
)
@_token_file_option
@output_options()
def create(name: str, scopes: tuple[str, ...], token_file: Path | None, fmt: Format) -> None:
    """Create a token NAME and print its secret, once: it is stored hashed.

    Give the secret to the client (for OpenLineage: `auth.type: api_key`,
    `auth.apiKey: <secret>`); a running server reads the file when it starts.

    Example: metaledger token create airflow --scope ingest --token-file tokens.json
    """
    from server.auth import TokenTable

    path = _token_file(token_file)
    if not name.strip() or len(name) > 200:
        raise click.BadParameter("a token name is 1 to 200 characters", param_hint="'NAME'")
    table, secret = TokenTable.load(path).with_token(name, scopes)  # type: ignore[arg-type]
    table.save(path)
    item = {"name": name, "scopes": list(scopes), "token": secret, "token_file": str(path)}
    emit(
        item,
        fmt,
        lambda: say(
            f"{secret}\nToken {name!r} ({', '.join(scopes)}) added to {path}. "
            "This is the only time the secret is shown."
        ),
    )


@token.command("list")
@_token_file_option
@output_options()
def list_(token_file: Path | None, fmt: Format) -> None:
    """List the tokens of a token file: names, scopes, creation times (never secrets).

    Example: metaledger token list --token-file tokens.json --json
    """
    from server.auth import TokenTable

    path = _token_file(token_file)
    records = TokenTable.load(path).records
    items = [
        {"name": r.name, "scopes": list(r.scopes), "created_at": r.created_at} for r in records
    ]

    def table() -> None:
        if not records:
            say(f"No tokens in {path}.")
            return
        from .output import Column, format_time

        print_table(
            (Column("NAME"), Column("SCOPES"), Column("CREATED", fit="keep")),
            [(r.name, ", ".join(r.scopes), format_time(r.created_at)) for r in records],
        )

    emit(items, fmt, table)


@token.command("revoke")
@click.argument("name")
@_token_file_option
@output_options()
def revoke(name: str, token_file: Path | None, fmt: Format) -> None:
    """Remove the token NAME from the token file (restart the server to apply).

    Example: metaledger token revoke airflow --token-file tokens.json
    """
    from server.auth import TokenTable

    path = _token_file(token_file)
    TokenTable.load(path).without(name).save(path)
    emit(
        {"action": "revoked", "type": "token", "name": name, "token_file": str(path)},
        fmt,
        lambda: say(f"Token {name!r} removed from {path}."),
    )
