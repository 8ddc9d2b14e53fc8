"""The ``metaledger`` command: global options, and subcommands loaded only when used.

Start-up stays quick (``metaledger --help`` imports click and this module
only): each subcommand lives in its own module, imported when it is invoked,
and the command list shows static one-line summaries.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from .errors import guarded

__all__ = ["COMMANDS", "cli", "main"]

#: Subcommand -> (module:attribute, one-line summary). The summaries are repeated
#: here so that ``--help`` need not import every module; a test keeps them equal.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("cli.init:init", "Create the store and its default stack."),
    "demo": ("cli.demo:demo", "Record a demo pipeline run, then describe it."),
    "store": ("cli.store:store", "Describe the store."),
    "stack": ("cli.stacks:stack", "Register, list, describe and change stacks."),
    "orchestrator": ("cli.components:orchestrator", "Manage orchestrators."),
    "artifact-store": ("cli.components:artifact_store", "Manage artifact stores."),
    "metadata-store": ("cli.components:metadata_store", "Manage metadata stores."),
    "component": ("cli.components:component", "Manage stack components of any TYPE."),
    "pipeline": ("cli.pipelines:pipeline", "List pipelines and their runs."),
    "run": ("cli.runs:run", "List, describe and delete pipeline runs."),
    "artifact": ("cli.artifacts:artifact", "List and describe artifacts and their lineage."),
    "events": ("cli.events:events", "Audit the event log: list, show, tail, append."),
    "replay": ("cli.replay:replay", "Replay the log into scratch views and summarise them."),
    "projections": ("cli.replay:projections", "Show and rebuild the projections."),
    "verify": ("cli.verify:verify", "Verify the log's hash chain and invariants."),
    "export": ("cli.transfer:export", "Export the log as JSON lines."),
    "import": (
        "cli.transfer:import_",
        "Import a JSON-lines export, rebuilding the exported log exactly.",
    ),
    "copy": ("cli.transfer_copy:copy", "Copy the store to another URI, then verify the copy."),
    "openlineage": (
        "cli.openlineage:openlineage",
        "Ingest OpenLineage events (what Airflow, Spark, dbt... emit).",
    ),
    "serve": (
        "cli.serve:serve",
        "Serve the store over HTTP: OpenLineage ingest, the read API, a live event stream.",
    ),
    "token": ("cli.serve:token", "Create, list and revoke the server's bearer tokens."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every subcommand, in the order of ``COMMANDS``."""
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Import and return one subcommand."""
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target[0].split(":")
        try:
            module = importlib.import_module(module_name)
        except KeyboardInterrupt:
            # Ctrl-C while the command loads: outside `guarded`, click would say
            # "Aborted!" and exit 1; nothing has run yet.
            click.echo("Interrupted; the store is intact.", err=True)
            raise click.exceptions.Exit(130) from None
        command = getattr(module, attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List subcommands with their static summaries (nothing imported)."""
        rows = [(name, summary) for name, (_, summary) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; map metaledger's errors to one line and an exit code."""
        with guarded(ctx):
            return super().invoke(ctx)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Refuse arguments that are not UTF-8; escape what parse errors quote."""
        from .input_limits import check_arguments
        from .output import visible

        try:
            check_arguments(args)
            return super().parse_args(ctx, args)
        except click.ClickException as exc:
            # click declares message final; parse errors quote what the user typed.
            setattr(exc, "message", visible(exc.message, keep_newlines=True))  # noqa: B010
            raise

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """Suggest close matches for a misspelt subcommand."""
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in COMMANDS:
            import difflib

            close = difflib.get_close_matches(name, list(COMMANDS), n=3, cutoff=0.6)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            ctx.fail(f"No such command {name!r}.{hint}")
        return super().resolve_command(ctx, args)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Example: metaledger init && metaledger stack list",
)
@click.option(
    "--store",
    "store_uri",
    metavar="URI",
    envvar="METALEDGER_STORE",
    help="The store: a directory, sqlite:///rel/path, sqlite:////abs/path or postgresql://... "
    "[default: $METALEDGER_STORE, else the user data directory]",
)
@click.option(
    "-v", "--verbose", count=True, help="Log more (-v info, -vv debug) and show tracebacks."
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines on stderr as key=value text or JSON.",
)
@click.option("--json", "json_output", is_flag=True, help="JSON output for every command.")
@click.version_option(version=None, package_name="metaledger", message="metaledger %(version)s")
@click.pass_context
def cli(
    ctx: click.Context, store_uri: str | None, verbose: int, log_format: str, json_output: bool
) -> None:
    """metaledger: an event-sourced ML metadata store.

    Stacks, components, pipeline runs, steps and artifacts are recorded as an
    append-only log of events; these commands describe, audit, replay and verify
    it. Commands that read first bring the views up to date with the log.
    """
    from .context import AppContext

    # Logging is configured by the first command body that runs (run_async), so
    # that `metaledger stack --help` does not import the store at all.
    ctx.obj = AppContext(
        store_uri=store_uri, verbose=verbose, log_format=log_format, json_output=json_output
    )


def main(argv: list[str] | None = None) -> Any:
    """The console script (``metaledger``, ``python -m cli``)."""
    return cli.main(args=sys.argv[1:] if argv is None else argv, prog_name="metaledger")
