"""Artifact queries: artifact versions with producer and consumers, and resolving a reference."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from eventstore import ARTIFACT_TYPES, datetime_from_us
from projections.errors import QueryError, ViewNotFoundError
from projections.transactions import Fetch, Tx

from .common import (
    ViewsReader,
    _check_limit,
    _check_ref,
    _loads,
    _one_candidate,
    _suggest,
)
from .runs import _resolve_run


class ConsumerView(msgspec.Struct, frozen=True, kw_only=True):
    """A step run that read an artifact."""

    step_run_id: str
    step_name: str | None
    run_id: str
    run_name: str | None
    input_name: str


class ArtifactView(msgspec.Struct, frozen=True, kw_only=True):
    """An artifact version with its producer and consumers."""

    artifact_id: str
    name: str
    version: int
    uri: str
    artifact_type: str
    data_type: str | None
    materializer: str | None
    content_hash: str | None
    size_bytes: int | None
    metadata: dict[str, Any]
    run_id: str
    run_name: str | None
    pipeline_name: str | None
    step_run_id: str
    step_name: str | None
    output_name: str
    created_at: datetime
    consumers: list[ConsumerView] = []


_ARTIFACT_COLUMNS = (
    "a.artifact_id, a.name, a.version, a.uri, a.artifact_type, a.data_type, a.materializer, "
    "a.content_hash, a.size_bytes, a.metadata, a.run_id, r.run_name, r.pipeline_name, "
    "a.step_run_id, COALESCE(st.step_name, ot.name), a.output_name, a.created_at_us"
)


# Run and step names are the runs projection's: a step's, or an OpenLineage root
# run's (a job that wrote datasets itself). The rows of its ``step_names`` view,
# joined here by hand: SQLite would scan that UNION ALL whole on each join.
_STEP_NAME_JOINS = (
    "LEFT JOIN steps st ON st.step_run_id = {step} "
    "LEFT JOIN ol_run_tree ot ON ot.run_id = {step} AND ot.root_run_id = ot.run_id"
)
_ARTIFACT_FROM = "artifacts a LEFT JOIN runs r ON r.run_id = a.run_id " + _STEP_NAME_JOINS.format(
    step="a.step_run_id"
)


def _artifact(row: Sequence[Any], consumers: list[ConsumerView] | None = None) -> ArtifactView:
    return ArtifactView(
        artifact_id=row[0],
        name=row[1],
        version=row[2],
        uri=row[3],
        artifact_type=row[4],
        data_type=row[5],
        materializer=row[6],
        content_hash=row[7],
        size_bytes=row[8],
        metadata=_loads(row[9]),
        run_id=row[10],
        run_name=row[11],
        pipeline_name=row[12],
        step_run_id=row[13],
        step_name=row[14],
        output_name=row[15],
        created_at=datetime_from_us(row[16]),
        consumers=consumers or [],
    )


def _artifact_filter(
    artifact_type: str | None, run: str | None, name: str | None
) -> Tx[tuple[str, list[Any]]]:
    where: list[str] = ["1 = 1"]
    params: list[Any] = []
    if artifact_type is not None:
        where.append("a.artifact_type = ?")
        params.append(artifact_type)
    if run is not None:
        row = yield from _resolve_run(run)
        where.append("a.run_id = ?")
        params.append(row[0])
    if name is not None:
        where.append("a.name = ?")
        params.append(name)
    return " AND ".join(where), params


def _resolve_artifact(ref: str) -> Tx[Sequence[Any]]:
    """Exact id, ``name:version``, else the one artifact ``ref`` names or is an id prefix of.

    A name means its latest version. As for runs, a name and an id prefix
    pointing at different artifacts make the reference ambiguous.
    """
    _check_ref("artifact", ref)
    base = f"SELECT {_ARTIFACT_COLUMNS} FROM {_ARTIFACT_FROM}"
    rows = yield Fetch(f"{base} WHERE a.artifact_id = ?", (ref,))
    if not rows and ":" in ref:
        name, _, version = ref.rpartition(":")
        if version.isascii() and version.isdigit() and len(version) < 19:
            rows = yield Fetch(f"{base} WHERE a.name = ? AND a.version = ?", (name, int(version)))
    if rows:
        exact: Sequence[Any] = rows[0]
        return exact
    named = yield Fetch(f"{base} WHERE a.name = ? ORDER BY a.version DESC LIMIT 1", (ref,))
    found = yield from _one_candidate(
        "artifact",
        ref,
        base,
        "a.artifact_id",
        named,
        lambda r: f"{r[1]}:{r[2]} (artifact id {r[0]})",
    )
    if found is not None:
        return found
    names = yield Fetch("SELECT DISTINCT name FROM artifacts LIMIT 2000")
    raise ViewNotFoundError("artifact", ref, _suggest(ref, [n for (n,) in names]))


class ArtifactQueries(ViewsReader):
    """Queries of artifacts."""

    async def artifacts(
        self,
        *,
        artifact_type: str | None = None,
        run: str | None = None,
        name: str | None = None,
        limit: int | None = 100,
    ) -> list[ArtifactView]:
        """Artifacts, newest first, filtered by type, producing run (any run reference) or name.

        A type outside ZenML's (``ARTIFACT_TYPES``) is a QueryError naming close ones.
        """
        _check_limit(limit)
        if artifact_type is not None and artifact_type not in ARTIFACT_TYPES:
            lowered = {t.lower(): t for t in ARTIFACT_TYPES}
            close = difflib.get_close_matches(artifact_type.lower(), lowered, n=1, cutoff=0.5)
            hint = f"did you mean {lowered[close[0]]!r}? " if close else ""
            raise QueryError(
                f"{artifact_type!r} is not an artifact type; {hint}"
                f"known: {', '.join(ARTIFACT_TYPES)}"
            )

        def body() -> Tx[list[ArtifactView]]:
            where, params = yield from _artifact_filter(artifact_type, run, name)
            sql = (
                f"SELECT {_ARTIFACT_COLUMNS} FROM {_ARTIFACT_FROM} WHERE {where} "
                "ORDER BY a.position DESC"
            )
            if limit is not None:
                sql += " LIMIT ?"
                params.append(limit)
            rows = yield Fetch(sql, tuple(params))
            return [_artifact(row) for row in rows]

        result: list[ArtifactView] = await self.views.read(body)
        return result

    async def count_artifacts(
        self, *, artifact_type: str | None = None, run: str | None = None, name: str | None = None
    ) -> int:
        """How many artifacts :meth:`artifacts` would list without a limit."""

        def body() -> Tx[int]:
            where, params = yield from _artifact_filter(artifact_type, run, name)
            [(count,)] = yield Fetch(
                f"SELECT COUNT(*) FROM artifacts a WHERE {where}", tuple(params)
            )
            return int(count)

        result: int = await self.views.read(body)
        return result

    async def artifact(self, ref: str) -> ArtifactView:
        """One artifact: by id, ``name:version``, name (latest version) or unique id prefix.

        The id prefix needs 4+ characters; a reference that could mean several
        artifacts raises AmbiguousReferenceError listing them.
        """

        def body() -> Tx[ArtifactView]:
            row = yield from _resolve_artifact(ref)
            consumers = yield Fetch(
                "SELECT c.step_run_id, COALESCE(st.step_name, ot.name), c.run_id, r.run_name, "
                "c.input_name FROM artifact_consumers c "
                + _STEP_NAME_JOINS.format(step="c.step_run_id")
                + " LEFT JOIN runs r ON r.run_id = c.run_id "
                "WHERE c.artifact_id = ? ORDER BY c.position",
                (row[0],),
            )
            return _artifact(
                row,
                [
                    ConsumerView(
                        step_run_id=c[0],
                        step_name=c[1],
                        run_id=c[2],
                        run_name=c[3],
                        input_name=c[4],
                    )
                    for c in consumers
                ],
            )

        result: ArtifactView = await self.views.read(body)
        return result
