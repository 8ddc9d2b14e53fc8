"""The library writes nothing to stdout; only entry points configure logging (issue 10, 8)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

_README = Path(__file__).parent.parent / "README.md"
_CLI = (sys.executable, "-m", "cli")


def _readme_orchestrator_example() -> str:
    """The Python example under "From an orchestrator" in the README, as printed there."""
    text = _README.read_text()
    section = text[text.index("## From an orchestrator") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


def _run(code: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_readme_example_prints_nothing_on_stdout(tmp_path: Path) -> None:
    """The README's orchestrator, unconfigured, on a fresh store: stdout stays empty."""
    example = _readme_orchestrator_example()
    assert 'open_store("./example-store")' in example
    done = _run(example, tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "example-store" / "ledger.db").exists()
    assert done.stdout == ""
    assert "store_created" not in done.stderr  # info is the application's to enable


_SET_ASIDE = """
import sys
import anyio
from eventstore import open_store
from projections import open_views

async def main() -> None:
    async with open_store(sys.argv[1]) as store, open_views(store) as views:
        await views.catch_up()
        await views.query.runs()

anyio.run(main)
"""


def test_views_set_aside_logs_on_stderr_only(tmp_path: Path) -> None:
    """An unreadable views file is set aside with a warning: on stderr, never stdout."""
    store = tmp_path / "store"
    first = _run(_SET_ASIDE, tmp_path, str(store))
    assert first.returncode == 0, first.stderr
    views = next(store.glob("views*.db"))
    views.write_bytes(b"this is not a SQLite database" * 100)
    done = _run(_SET_ASIDE, tmp_path, str(store))
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "views_unreadable" in done.stderr  # a warning: Python's last-resort handler


_EMBEDDED = """
import logging, sys
import anyio
from eventstore import open_store

records = []

class Keep(logging.Handler):
    def emit(self, record):
        records.append(record)

logging.getLogger("eventstore").addHandler(Keep())
logging.getLogger("eventstore").setLevel(logging.INFO)

async def main() -> None:
    async with open_store(sys.argv[1]):
        pass

anyio.run(main)
created = [r for r in records if r.metaledger["event"] == "store_created"]
assert created and created[0].name == "eventstore.sqlite", records
assert created[0].metaledger["path"].endswith("ledger.db")
assert created[0].getMessage().startswith("store_created path=")
sys.stderr.write("ok")
"""


def test_embedding_application_receives_library_logs_through_logging(tmp_path: Path) -> None:
    """The application's own ``logging`` handlers receive the library's events and fields."""
    done = _run(_EMBEDDED, tmp_path, str(tmp_path / "store"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr == "ok"


def test_cli_logs_on_stderr_with_verbose(tmp_path: Path) -> None:
    """The CLI (an entry point) still logs: -v shows info lines on stderr, JSON on request."""
    store = tmp_path / "store"
    done = subprocess.run(
        [*_CLI, "-v", "--store", str(store), "init"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "store_created" in done.stderr
    assert "store_created" not in done.stdout
    assert done.stdout.startswith("Initialised")
    again = subprocess.run(
        [*_CLI, "-v", "--log-format", "json", "--store", str(tmp_path / "s2"), "init"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    line = next(x for x in again.stderr.splitlines() if "store_created" in x)
    assert '"event": "store_created"' in line
    assert '"level": "info"' in line
