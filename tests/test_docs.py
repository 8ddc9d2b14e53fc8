"""The docs agree with the code: the event catalogue matches it, and every example runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from eventstore.events import EVENT_TYPES

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EVENTS_DOC = DOCS / "events.md"
#: Every file whose ```python blocks must run as they are.
EXAMPLE_FILES = (*sorted(DOCS.glob("*.md")), ROOT / "README.md")
#: Seconds an example may take before it counts as hung (an unclosed store hangs at exit).
EXAMPLE_TIMEOUT = 120

_EVENT_HEADING = re.compile(r"^### `(?P<tag>[^`]+)` \(v(?P<version>[1-9][0-9]*)\)$")
_SEPARATOR_CELL = re.compile(r"^:?-+:?$")
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


# -- the event catalogue -----------------------------------------------------------


@dataclass(frozen=True)
class CatalogueEntry:
    """One event type: its tag, its schema version and its field names in order."""

    tag: str
    schema_version: int
    fields: tuple[str, ...]


def code_catalogue() -> list[CatalogueEntry]:
    """The catalogue as the code defines it, in EVENT_TYPES order."""
    return [
        CatalogueEntry(tag, cls.schema_version, tuple(f.name for f in msgspec.structs.fields(cls)))
        for tag, cls in EVENT_TYPES.items()
    ]


def _unfenced(lines: list[str]) -> Iterator[tuple[int, str]]:
    """(index, line) of the lines outside fenced code blocks."""
    fenced = False
    for index, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            yield index, line


def _cells(row: str) -> list[str]:
    inner = row.strip().removeprefix("|").removesuffix("|")
    return [cell.strip() for cell in _UNESCAPED_PIPE.split(inner)]


def _field_names(lines: list[tuple[int, str]], heading: str) -> tuple[str, ...]:
    """The first column of the first table in a section (the lines after its heading)."""
    rows: list[str] = []
    for _, line in lines:
        if line.startswith("#"):
            break
        if line.lstrip().startswith("|"):
            rows.append(line)
        elif rows:
            break
    if len(rows) < 2:
        raise ValueError(f"{heading}: no `field | type | meaning` table under the heading")
    if _cells(rows[0]) != ["field", "type", "meaning"]:
        raise ValueError(f"{heading}: the table's header must be `field | type | meaning`")
    if not all(_SEPARATOR_CELL.match(cell) for cell in _cells(rows[1])):
        raise ValueError(f"{heading}: the table's second row must be its separator")
    names: list[str] = []
    for row in rows[2:]:
        cells = _cells(row)
        if len(cells) != 3:
            raise ValueError(f"{heading}: row {row.strip()!r} does not have 3 cells")
        names.append(cells[0].strip("`"))
    return tuple(names)


def parse_catalogue(text: str) -> list[CatalogueEntry]:
    """The catalogue as documented: each "### `tag` (vN)" heading and its field table.

    A level-3 heading that starts with a code span but is not of that exact form is
    an error, so a typo cannot hide an event from the check.
    """
    lines = list(_unfenced(text.splitlines()))
    entries: list[CatalogueEntry] = []
    for position, (index, line) in enumerate(lines):
        if not line.startswith("### `"):
            continue
        match = _EVENT_HEADING.match(line.rstrip())
        if match is None:
            raise ValueError(f"line {index + 1}: an event heading reads '### `tag` (vN)': {line!r}")
        fields = _field_names(lines[position + 1 :], line.strip())
        entries.append(CatalogueEntry(match["tag"], int(match["version"]), fields))
    return entries


def catalogue_differences(
    documented: list[CatalogueEntry], code: list[CatalogueEntry]
) -> list[str]:
    """Every way the documented catalogue differs from the code's; empty when they agree."""
    problems: list[str] = []
    doc_tags = [entry.tag for entry in documented]
    code_tags = [entry.tag for entry in code]
    doc_by_tag = {entry.tag: entry for entry in documented}
    code_by_tag = {entry.tag: entry for entry in code}
    for tag in sorted({t for t in doc_tags if doc_tags.count(t) > 1}):
        problems.append(f"{tag}: documented {doc_tags.count(tag)} times")
    for tag in code_tags:
        if tag not in doc_by_tag:
            problems.append(f"{tag}: in the code, missing from the doc")
    for tag in doc_tags:
        if tag not in code_by_tag:
            problems.append(f"{tag}: in the doc, but the code has no such event")
    shared_doc_order = [t for t in dict.fromkeys(doc_tags) if t in code_by_tag]
    shared_code_order = [t for t in code_tags if t in doc_by_tag]
    if shared_doc_order != shared_code_order:
        problems.append(
            f"the doc's order {shared_doc_order} differs from the catalogue's {shared_code_order}"
        )
    for tag in shared_code_order:
        doc, actual = doc_by_tag[tag], code_by_tag[tag]
        if doc.schema_version != actual.schema_version:
            problems.append(
                f"{tag}: documented as v{doc.schema_version}, the code is v{actual.schema_version}"
            )
        missing = [f for f in actual.fields if f not in doc.fields]
        extra = [f for f in doc.fields if f not in actual.fields]
        if missing:
            problems.append(f"{tag}: fields missing from the doc: {missing}")
        if extra:
            problems.append(f"{tag}: fields in the doc the code lacks: {extra}")
        if not missing and not extra and doc.fields != actual.fields:
            problems.append(
                f"{tag}: fields documented in the order {list(doc.fields)}, "
                f"the code's order is {list(actual.fields)}"
            )
    return problems


class TestEventCatalogue:
    """docs/events.md documents exactly the code's event catalogue."""

    def test_events_doc_matches_code(self) -> None:
        """Every tag, schema version and field (name and order) of the code is in
        docs/events.md, in catalogue order, and the doc names nothing the code lacks."""
        documented = parse_catalogue(EVENTS_DOC.read_text(encoding="utf-8"))
        problems = catalogue_differences(documented, code_catalogue())
        assert [] == problems, "docs/events.md differs from the code:\n" + "\n".join(problems)

    @pytest.mark.parametrize(
        ("old", "new"),
        [
            pytest.param("### `run.deleted` (v1)", "### `run.purged` (v1)", id="renamed-tag"),
            pytest.param("### `metadata.logged` (v2)", "### `metadata.logged` (v1)", id="version"),
            pytest.param("| `reason` | `str` |", "| `cause` | `str` |", id="renamed-field"),
            pytest.param(
                '| `reason` | `str` | why, for the audit trail (default `""`) |\n',
                "",
                id="missing-field",
            ),
            pytest.param(
                "| `reason` | `str` |",
                "| `purged` | `bool` | - |\n| `reason` | `str` |",
                id="extra-field",
            ),
        ],
    )
    def test_a_changed_doc_is_caught(self, old: str, new: str) -> None:
        """A renamed tag, a wrong version, or a renamed, missing or extra field in the
        doc is reported."""
        text = EVENTS_DOC.read_text(encoding="utf-8")
        assert 1 == text.count(old)
        documented = parse_catalogue(text.replace(old, new))
        assert [] != catalogue_differences(documented, code_catalogue())

    def test_a_missing_section_is_caught(self) -> None:
        """An event the code has but the doc lacks is reported by its tag."""
        documented = parse_catalogue(EVENTS_DOC.read_text(encoding="utf-8"))
        dropped = documented.pop(3)
        assert [f"{dropped.tag}: in the code, missing from the doc"] == catalogue_differences(
            documented, code_catalogue()
        )

    def test_an_extra_section_is_caught(self) -> None:
        """An event the doc names but the code lacks is reported by its tag."""
        documented = parse_catalogue(EVENTS_DOC.read_text(encoding="utf-8"))
        documented.append(CatalogueEntry("model.promoted", 1, ("model_id",)))
        assert [
            "model.promoted: in the doc, but the code has no such event"
        ] == catalogue_differences(documented, code_catalogue())

    def test_reordered_fields_and_events_are_caught(self) -> None:
        """Fields listed out of code order, and events out of catalogue order, are reported."""
        code = code_catalogue()
        first, second, *rest = code
        swapped_fields = CatalogueEntry(first.tag, first.schema_version, first.fields[::-1])
        assert [
            f"{first.tag}: fields documented in the order {list(first.fields[::-1])}, "
            f"the code's order is {list(first.fields)}"
        ] == catalogue_differences([swapped_fields, second, *rest], code)
        assert 1 == len(catalogue_differences([second, first, *rest], code))

    def test_a_malformed_event_heading_is_an_error(self) -> None:
        """A level-3 heading that looks like an event but misses the "(vN)" form fails."""
        with pytest.raises(ValueError, match="event heading"):
            parse_catalogue("### `run.deleted` v1\n\n| field | type | meaning |\n|---|---|---|\n")


# -- runnable examples -------------------------------------------------------------


@dataclass(frozen=True)
class CodeBlock:
    """A ```python block of a doc: where it is and its source."""

    path: Path
    line: int  # 1-based line of the block's first line of code
    code: str

    @property
    def where(self) -> str:
        """The block's place, as ``file:line``."""
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def python_blocks(path: Path) -> list[CodeBlock]:
    """Every fenced block opened with exactly ```python in the file."""
    blocks: list[CodeBlock] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    start: int | None = None
    for index, line in enumerate(lines):
        stripped = line.strip()
        if start is None:
            if stripped == "```python":
                start = index + 1
        elif stripped == "```":
            blocks.append(CodeBlock(path, start + 1, "\n".join(lines[start:index]) + "\n"))
            start = None
    if start is not None:
        raise ValueError(f"{path}:{start}: a ```python block is never closed")
    return blocks


CODE_BLOCKS = [block for path in EXAMPLE_FILES for block in python_blocks(path)]


def test_examples_are_found() -> None:
    """The README's example and at least one example of each of the two main docs are
    collected, so the example test cannot pass by running nothing."""
    places = {block.path.name for block in CODE_BLOCKS}
    assert {"README.md", "architecture.md", "events.md"} <= places


@pytest.mark.slow
@pytest.mark.parametrize("block", CODE_BLOCKS, ids=[block.where for block in CODE_BLOCKS])
def test_python_example_runs(block: CodeBlock, tmp_path: Path) -> None:
    """Each ```python block of docs/*.md and README.md runs as is, in a fresh process in
    an empty working directory with METALEDGER_STORE pointing at a temporary store,
    and exits with status 0."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    # Blank lines in front keep a traceback's line numbers equal to the doc's.
    script = tmp_path / f"{block.path.stem}_example.py"
    script.write_text("\n" * (block.line - 1) + block.code, encoding="utf-8")
    env = {
        **os.environ,
        "METALEDGER_STORE": str(tmp_path / "store"),
        "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
    }
    try:
        result = subprocess.run(
            [sys.executable, str(script)],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=EXAMPLE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{block.where}: still running after {exc.timeout} s\n{exc.stderr!r}")
    assert 0 == result.returncode, (
        f"{block.where} exited with {result.returncode}\n"
        f"--- stderr ---\n{result.stderr}\n--- stdout ---\n{result.stdout}"
    )
