"""docs/cli.md is generated from the commands' help, is up to date, and shows examples."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from cli.docgen import DOC_PATH, iter_commands, render
from cli.main import cli


def test_cli_reference_is_up_to_date() -> None:
    """The page equals what `python -m cli.docgen` would write now."""
    assert DOC_PATH.exists(), "run `python -m cli.docgen`"
    assert render() == DOC_PATH.read_text(), "docs/cli.md is stale: run `python -m cli.docgen`"


def test_every_command_is_documented_with_an_example() -> None:
    """Every command and group appears in the page, and each help has an Example line."""
    text = DOC_PATH.read_text()
    for path, command, _ in iter_commands(cli, ("metaledger",), None):
        if command is cli:
            continue
        assert f"`{' '.join(path)}`" in text, path
        assert "Example:" in (command.help or ""), f"{' '.join(path)} has no example"


@pytest.mark.slow
def test_help_starts_quickly() -> None:
    """`metaledger --help` and a group's --help import nothing heavy (not even the store)."""
    probe = (
        "import sys, cli.main; "
        "heavy = [m for m in ('anyio', 'aiosqlite', 'msgspec', 'rich', 'eventstore', 'projections')"
        " if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert "[]" == out.strip()
    subcommand_help = (
        "import sys\nfrom cli.main import main\ntry:\n    main(['stack', '--help'])\n"
        "except SystemExit:\n    pass\nprint('eventstore' in sys.modules, file=sys.stderr)"
    )
    probed = subprocess.run([sys.executable, "-c", subcommand_help], capture_output=True, text=True)
    assert "False" == probed.stderr.strip()
    result = subprocess.run([sys.executable, "-m", "cli", "--help"], capture_output=True, text=True)
    assert 0 == result.returncode
    assert "Commands:" in result.stdout


def test_group_help_lists_subcommands() -> None:
    """A group's help lists its subcommands (e.g. stack)."""
    ctx = click.Context(cli, info_name="metaledger")
    stack = cli.get_command(ctx, "stack")
    assert stack is not None
    help_text = stack.get_help(click.Context(stack, info_name="stack", parent=ctx))
    for name in ("register", "list", "describe", "set", "update", "rename", "delete"):
        assert name in help_text
