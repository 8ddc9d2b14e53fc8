"""``export`` writes a private file, never through a symlink (issue 10, 6)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.main import cli


def _cli(store: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--store", str(store), *args], catch_exceptions=False)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store holding the demo run."""
    path = tmp_path / "store"
    assert 0 == _cli(path, "demo").exit_code
    return path


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask, restored afterwards."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _exported(store: Path, target: Path) -> None:
    before = set(target.parent.glob(".*.partial"))
    result = _cli(store, "export", str(target))
    assert 0 == result.exit_code, result.output
    assert target.is_file()
    assert not target.is_symlink()
    assert _mode(target) == 0o600
    assert '"type":"run.started"' in target.read_text()
    assert before == set(target.parent.glob(".*.partial"))  # none left behind


@pytest.mark.usefixtures("open_umask")
def test_mode_is_0600_whatever_the_umask(store: Path, tmp_path: Path) -> None:
    """With umask 000 the export is still readable by its owner only."""
    _exported(store, tmp_path / "out.jsonl")


@pytest.mark.usefixtures("open_umask")
def test_existing_files_do_not_lend_their_mode(store: Path, tmp_path: Path) -> None:
    """A world-readable file at the final or the old temporary name is never reused."""
    target = tmp_path / "out.jsonl"
    target.write_text("old")
    target.chmod(0o644)
    partial = tmp_path / ".out.jsonl.partial"
    partial.write_text("left over by a crash")
    partial.chmod(0o666)
    _exported(store, target)
    assert "left over by a crash" == partial.read_text()


def test_symlink_at_the_final_path_is_replaced_not_followed(store: Path, tmp_path: Path) -> None:
    """A symlink at FILE is replaced by the export; what it pointed to is untouched."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    target = tmp_path / "out.jsonl"
    target.symlink_to(victim)
    _exported(store, target)
    assert "precious" == victim.read_text()


def test_symlink_at_a_temporary_name_is_never_followed(store: Path, tmp_path: Path) -> None:
    """A symlink planted where a temporary file might go is never written through."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    planted = tmp_path / ".out.jsonl.partial"
    planted.symlink_to(victim)
    _exported(store, tmp_path / "out.jsonl")
    assert "precious" == victim.read_text()
    assert planted.is_symlink()


def test_a_failed_export_leaves_no_file(tmp_path: Path) -> None:
    """No store: an error, and neither FILE nor a temporary file is left behind."""
    out = tmp_path / "out"
    out.mkdir()
    result = _cli(tmp_path / "missing", "export", str(out / "x.jsonl"))
    assert 0 != result.exit_code
    assert [] == list(out.iterdir())
