"""OpenLineage queries: namespaces, jobs, runs, datasets, the job/dataset graph, raw events.

What the Marquez-compatible reads of the server answer, from the tables the
OpenLineage handlers keep (``projections/openlineage.py``): the run tree and
state (runs projection), the datasets and the job/dataset edges (artifacts
projection), and the stored events by their ``eventTime`` (read whole from the
log). Times are microseconds in the views and datetimes here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import msgspec

from eventstore import OpenLineageReceived, datetime_from_us
from projections.errors import QueryError, ViewNotFoundError
from projections.transactions import Fetch, Tx

from .common import ViewsReader

__all__ = [
    "OLDataset",
    "OLDatasetVersion",
    "OLEvents",
    "OLGraphNode",
    "OLJob",
    "OLNamespace",
    "OLRun",
    "OpenLineageQueries",
]

#: metaledger's run status -> Marquez's run state.
_STATES = {"completed": "COMPLETED", "failed": "FAILED", "stopped": "ABORTED"}
_json = msgspec.json.Decoder()


class OLNamespace(msgspec.Struct, frozen=True, kw_only=True):
    """A namespace of jobs or datasets, with when it was first and last named."""

    name: str
    created_at: datetime
    updated_at: datetime


class OLRun(msgspec.Struct, frozen=True, kw_only=True):
    """An OpenLineage run as its events merged show it (Marquez's states)."""

    id: str
    run_uuid: str
    namespace: str
    job: str
    state: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    duration_ms: int | None
    nominal_start_time: str | None
    nominal_end_time: str | None
    parent_run_id: str | None
    root_run_id: str
    error: str | None


class OLJob(msgspec.Struct, frozen=True, kw_only=True):
    """A job: its datasets read and written, its latest run."""

    namespace: str
    name: str
    created_at: datetime
    updated_at: datetime
    inputs: list[tuple[str, str]]
    outputs: list[tuple[str, str]]
    latest_run: OLRun | None
    parent_job: tuple[str, str] | None = None


class OLDataset(msgspec.Struct, frozen=True, kw_only=True):
    """A dataset, with its newest version (an artifact id) when a run wrote it."""

    namespace: str
    name: str
    created_at: datetime
    updated_at: datetime
    current_version: str | None


class OLDatasetVersion(msgspec.Struct, frozen=True, kw_only=True):
    """One version of a dataset: the artifact a run wrote (or its first sighting)."""

    namespace: str
    name: str
    version: str
    number: int
    dataset_version: str | None
    created_at: datetime
    run_id: str | None


class OLGraphNode(msgspec.Struct, frozen=True, kw_only=True):
    """A node of the job/dataset graph, with its edges (node ids ``job:NS:NAME``...)."""

    id: str
    type: Literal["JOB", "DATASET"]
    namespace: str
    name: str
    in_edges: list[tuple[str, str]]
    out_edges: list[tuple[str, str]]


class OLEvents(msgspec.Struct, frozen=True, kw_only=True):
    """A page of stored events (their JSON texts) and how many match in all."""

    events: list[str]
    total_count: int


def _time(value: int | None) -> datetime | None:
    return None if value is None else datetime_from_us(value)


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    decoded = _json.decode(value)
    return decoded if isinstance(decoded, str) else None


_RUN_SELECT = (
    "SELECT t.raw_run_id, t.run_id, t.namespace, t.name, s.term_status, s.first_us, "
    "NULL, "
    "s.start_us, s.term_us, t.parent_run_id, t.root_run_id, s.error, "
    "(SELECT value FROM ol_run_shown WHERE run_id = t.run_id AND key = "
    "'openlineage.nominalStartTime'), "
    "(SELECT value FROM ol_run_shown WHERE run_id = t.run_id AND key = "
    "'openlineage.nominalEndTime'), "
    "(SELECT MAX(sort_key) FROM ol_run_shown WHERE run_id = t.run_id) "
    "FROM ol_run_tree t JOIN ol_run_state s ON s.run_id = t.run_id"
)


def _run(row: Sequence[Any]) -> OLRun:
    status, first = row[4], row[5]
    last_key = row[14]
    updated = int(last_key.split(".", 1)[0]) if last_key else first
    started = row[7] if row[7] is not None else first
    ended = row[8]
    parent = row[9]
    return OLRun(
        id=row[0],
        run_uuid=row[1],
        namespace=row[2],
        job=row[3],
        state=_STATES.get(status, "RUNNING"),
        created_at=datetime_from_us(first),
        updated_at=datetime_from_us(max(updated, ended or 0)),
        started_at=_time(started),
        ended_at=_time(ended),
        duration_ms=None if ended is None else (ended - started) // 1000,
        nominal_start_time=_text(row[12]),
        nominal_end_time=_text(row[13]),
        parent_run_id=parent,
        root_run_id=row[10],
        error=row[11],
    )


class OpenLineageQueries(ViewsReader):
    """Queries of OpenLineage jobs, runs, datasets and events."""

    async def ol_namespaces(self) -> list[OLNamespace]:
        """Every namespace a job or a dataset lives in, by name."""
        rows = await self.views.fetch(
            "SELECT n, MIN(f), MAX(l) FROM ("
            "SELECT t.namespace AS n, s.first_us AS f, COALESCE(s.term_us, s.first_us) AS l "
            "FROM ol_run_tree t JOIN ol_run_state s ON s.run_id = t.run_id "
            "UNION ALL SELECT namespace, first_us, last_us FROM ol_datasets) u "
            "GROUP BY n ORDER BY n"
        )
        return [
            OLNamespace(name=n, created_at=datetime_from_us(f), updated_at=datetime_from_us(u))
            for n, f, u in rows
        ]

    async def ol_runs(
        self, namespace: str, job: str, *, limit: int = 100, offset: int = 0
    ) -> tuple[list[OLRun], int]:
        """The job's runs, newest first, and how many it has."""
        rows, total = await self._page_and_total(
            f"{_RUN_SELECT} WHERE t.namespace = ? AND t.name = ? "
            "ORDER BY s.first_us DESC, t.run_id LIMIT ? OFFSET ?",
            (namespace, job, limit, offset),
            "SELECT COUNT(*) FROM ol_run_tree t JOIN ol_run_state s ON s.run_id = t.run_id "
            "WHERE t.namespace = ? AND t.name = ?",
            (namespace, job),
        )
        return [_run(r) for r in rows], total

    async def _page_and_total(
        self,
        page_sql: str,
        page_params: tuple[Any, ...],
        count_sql: str,
        count_params: tuple[Any, ...],
    ) -> tuple[list[tuple[Any, ...]], int]:
        """A page of rows and the count it is a page of, read in one snapshot.

        Two separate reads could straddle a commit of the views follower (it
        runs in another process under ``metaledger serve``): a page of 11 with
        a total of 12.
        """

        def body() -> Tx[tuple[list[tuple[Any, ...]], int]]:
            rows = yield Fetch(page_sql, page_params)
            [(total,)] = yield Fetch(count_sql, count_params)
            return rows, int(total)

        result: tuple[list[tuple[Any, ...]], int] = await self.views.read(body)
        return result

    async def ol_run(self, run_id: str) -> OLRun:
        """One run by its runId (or the UUID metaledger gave a runId that is not one)."""
        rows = await self.views.fetch(
            f"{_RUN_SELECT} WHERE t.raw_run_id = ? OR t.run_id = ? LIMIT 1", (run_id, run_id)
        )
        if not rows:
            raise ViewNotFoundError("run", run_id)
        return _run(rows[0])

    async def ol_run_events(self, run: OLRun) -> list[dict[str, Any]]:
        """The stored events of a run, decoded, in eventTime order (needs the store)."""
        if self.store is None:
            raise QueryError("a run's events need the event store")
        found: list[tuple[str, str, dict[str, Any]]] = []
        async for recorded in self.store.read_stream(f"openlineage-run-{run.run_uuid}"):
            event = recorded.event
            if isinstance(event, OpenLineageReceived):
                document = _json.decode(event.event)
                found.append((str(document.get("eventTime")), event.key, document))
        return [d for _, _, d in sorted(found, key=lambda f: (f[0], f[1]))]

    async def ol_jobs(
        self, namespace: str, *, limit: int = 100, offset: int = 0
    ) -> tuple[list[OLJob], int]:
        """The namespace's jobs (those with runs), by name, and how many there are."""

        def body() -> Tx[tuple[list[OLJob], int]]:
            names = yield Fetch(
                "SELECT t.name, MIN(s.first_us), MAX(COALESCE(s.term_us, s.first_us)), "
                "MAX(t.parent_run_id) FROM ol_run_tree t JOIN ol_run_state s "
                "ON s.run_id = t.run_id WHERE t.namespace = ? GROUP BY t.name ORDER BY t.name "
                "LIMIT ? OFFSET ?",
                (namespace, limit, offset),
            )
            [(total,)] = yield Fetch(
                "SELECT COUNT(DISTINCT t.name) FROM ol_run_tree t JOIN ol_run_state s "
                "ON s.run_id = t.run_id WHERE t.namespace = ?",
                (namespace,),
            )
            jobs: list[OLJob] = []
            for name, first, last, parent in names:
                edges = yield Fetch(
                    "SELECT ds_namespace, ds_name, direction FROM ol_job_datasets "
                    "WHERE namespace = ? AND name = ? ORDER BY ds_namespace, ds_name",
                    (namespace, name),
                )
                latest = yield Fetch(
                    f"{_RUN_SELECT} WHERE t.namespace = ? AND t.name = ? "
                    "ORDER BY s.first_us DESC, t.run_id LIMIT 1",
                    (namespace, name),
                )
                parent_job = None
                if parent is not None:
                    rows = yield Fetch(
                        "SELECT namespace, name FROM ol_run_tree WHERE run_id = ?", (parent,)
                    )
                    parent_job = (rows[0][0], rows[0][1]) if rows else None
                jobs.append(
                    OLJob(
                        namespace=namespace,
                        name=name,
                        created_at=datetime_from_us(first),
                        updated_at=datetime_from_us(last),
                        inputs=[(n, d) for n, d, way in edges if way == "in"],
                        outputs=[(n, d) for n, d, way in edges if way == "out"],
                        latest_run=_run(latest[0]) if latest else None,
                        parent_job=parent_job,
                    )
                )
            return jobs, int(total)

        result: tuple[list[OLJob], int] = await self.views.read(body)
        return result

    async def ol_datasets(
        self, namespace: str, *, limit: int = 100, offset: int = 0
    ) -> tuple[list[OLDataset], int]:
        """The namespace's datasets, by name, and how many there are."""
        rows, total = await self._page_and_total(
            "SELECT d.namespace, d.name, d.first_us, d.last_us, (SELECT a.artifact_id FROM "
            "artifacts a WHERE a.name = ? || '/' || d.name AND a.output_name <> 'source' "
            "ORDER BY a.version DESC LIMIT 1) FROM ol_datasets d WHERE d.namespace = ? "
            "ORDER BY d.name LIMIT ? OFFSET ?",
            (namespace.rstrip("/"), namespace, limit, offset),
            "SELECT COUNT(*) FROM ol_datasets WHERE namespace = ?",
            (namespace,),
        )
        return [
            OLDataset(
                namespace=r[0],
                name=r[1],
                created_at=datetime_from_us(r[2]),
                updated_at=datetime_from_us(r[3]),
                current_version=r[4],
            )
            for r in rows
        ], int(total)

    async def ol_dataset_versions(
        self, namespace: str, name: str, *, limit: int = 100, offset: int = 0
    ) -> tuple[list[OLDatasetVersion], int]:
        """The versions runs wrote of a dataset, newest first (ViewNotFoundError if unknown)."""
        known = await self.views.fetch(
            "SELECT 1 FROM ol_datasets WHERE namespace = ? AND name = ?", (namespace, name)
        )
        if not known:
            raise ViewNotFoundError("dataset", f"{namespace}:{name}")
        artifact_name = f"{namespace.rstrip('/')}/{name}"
        rows, total = await self._page_and_total(
            "SELECT a.artifact_id, a.version, a.content_hash, a.created_at_us, "
            "(SELECT t.raw_run_id FROM ol_artifact_tree t WHERE t.run_id = a.step_run_id) "
            "FROM artifacts a WHERE a.name = ? AND a.output_name <> 'source' "
            "ORDER BY a.version DESC LIMIT ? OFFSET ?",
            (artifact_name, limit, offset),
            "SELECT COUNT(*) FROM artifacts WHERE name = ? AND output_name <> 'source'",
            (artifact_name,),
        )
        return [
            OLDatasetVersion(
                namespace=namespace,
                name=name,
                version=r[0],
                number=r[1],
                dataset_version=r[2],
                created_at=datetime_from_us(r[3]),
                run_id=r[4],
            )
            for r in rows
        ], int(total)

    async def ol_lineage(self, node_id: str, depth: int = 20) -> list[OLGraphNode]:
        """The job/dataset graph around ``job:NS:NAME`` or ``dataset:NS:NAME``, ``depth`` hops."""
        kind, _, rest = node_id.partition(":")
        namespace, _, name = rest.partition(":")
        if kind not in ("job", "dataset") or not namespace or not name:
            raise QueryError(
                f"nodeId {node_id!r}: give job:NAMESPACE:NAME or dataset:NAMESPACE:NAME"
            )
        # A namespace may hold ':' (postgres://host:5432): try each split, keep a known one.
        candidates = [
            (rest[:i], rest[i + 1 :]) for i in range(len(rest)) if rest[i] == ":" and i > 0
        ]

        def body() -> Tx[list[OLGraphNode]]:
            start: tuple[str, str, str] | None = None
            for ns, nm in candidates:
                table = "ol_job_datasets" if kind == "job" else "ol_datasets"
                rows = yield Fetch(
                    f"SELECT 1 FROM {table} WHERE namespace = ? AND name = ? LIMIT 1", (ns, nm)
                )
                if not rows and kind == "job":
                    rows = yield Fetch(
                        "SELECT 1 FROM ol_run_tree WHERE namespace = ? AND name = ? LIMIT 1",
                        (ns, nm),
                    )
                if rows:
                    start = (kind, ns, nm)
                    break
            if start is None:
                raise ViewNotFoundError(kind, f"{namespace}:{name}")
            seen = {start}
            frontier = [start]
            edges: set[tuple[tuple[str, str, str], tuple[str, str, str]]] = set()
            for _ in range(depth):
                following: list[tuple[str, str, str]] = []
                for node_kind, ns, nm in frontier:
                    if node_kind == "job":
                        rows = yield Fetch(
                            "SELECT ds_namespace, ds_name, direction FROM ol_job_datasets "
                            "WHERE namespace = ? AND name = ?",
                            (ns, nm),
                        )
                        pairs = [(("dataset", a, b), way) for a, b, way in rows]
                    else:
                        rows = yield Fetch(
                            "SELECT namespace, name, direction FROM ol_job_datasets "
                            "WHERE ds_namespace = ? AND ds_name = ?",
                            (ns, nm),
                        )
                        # The dataset is read by (in) or written by (out) the job.
                        pairs = [
                            (("job", a, b), "out" if way == "in" else "in") for a, b, way in rows
                        ]
                    here = (node_kind, ns, nm)
                    for other, way in pairs:
                        edges.add((other, here) if way == "in" else (here, other))
                        if other not in seen:
                            seen.add(other)
                            following.append(other)
                if not following:
                    break
                frontier = following
            return [
                OLGraphNode(
                    id=_node_id(node),
                    type="JOB" if node[0] == "job" else "DATASET",
                    namespace=node[1],
                    name=node[2],
                    in_edges=sorted(
                        (_node_id(a), _node_id(b)) for a, b in edges if b == node and a in seen
                    ),
                    out_edges=sorted(
                        (_node_id(a), _node_id(b)) for a, b in edges if a == node and b in seen
                    ),
                )
                for node in sorted(seen)
            ]

        result: list[OLGraphNode] = await self.views.read(body)
        return result

    async def ol_events(
        self,
        *,
        before_us: int | None = None,
        after_us: int | None = None,
        limit: int = 100,
        offset: int = 0,
        ascending: bool = False,
    ) -> OLEvents:
        """Stored events by eventTime within (after, before), a page of them (needs the store)."""
        if self.store is None:
            raise QueryError("raw events need the event store")
        where, params = [], []
        if before_us is not None:
            where.append("time_us < ?")
            params.append(before_us)
        if after_us is not None:
            where.append("time_us > ?")
            params.append(after_us)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        order = "ASC" if ascending else "DESC"
        rows, total = await self._page_and_total(
            f"SELECT position FROM ol_events {clause} ORDER BY time_us {order}, position {order} "
            "LIMIT ? OFFSET ?",
            (*params, limit, offset),
            f"SELECT COUNT(*) FROM ol_events {clause}",
            tuple(params),
        )
        texts: list[str] = []
        for (position,) in rows:
            recorded = await self.store.get_position(position)
            if recorded is not None and isinstance(recorded.event, OpenLineageReceived):
                texts.append(recorded.event.event)
        return OLEvents(events=texts, total_count=total)


def _node_id(node: tuple[str, str, str]) -> str:
    return f"{node[0]}:{node[1]}:{node[2]}"
