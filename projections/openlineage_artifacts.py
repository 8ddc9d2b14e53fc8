"""OpenLineage datasets folded into the artifacts view (see ``openlineage.py`` for the design).

Each output dataset of a run becomes an artifact named ``namespace/name``, one
version per producing run; each input dataset a ``consumed`` edge to the version
the run read, decided by event times (:func:`_relink`). The run hierarchy is kept
in ``ol_artifact_tree`` by the same operations as the runs projection's
(:func:`~projections.openlineage.tree_ops`), so artifact rows carry their root
run's id like native steps' artifacts. JobEvents and DatasetEvents feed the
dataset list and the job/dataset graph the Marquez reads answer from.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from eventstore import OpenLineageReceived
from eventstore.openlineage import (
    DatasetRef,
    decode,
    parse_event_time,
    static_datasets,
)
from eventstore.openlineage.facts import datasets as _datasets

from .definition import EventContext, Op, Table, to_json
from .openlineage import (
    TREE_COLUMNS,
    artifact_id_for,
    facts_of,
    padded,
    root_of,
    roots_of,
    tree_ops,
)

__all__ = ["ARTIFACT_TABLES", "artifact_ops", "artifact_ops_deferred", "normalise_artifacts"]


ARTIFACT_TABLES = {
    "ol_artifact_tree": Table(TREE_COLUMNS, "run_id", ("root_run_id",)),
    # Datasets by namespace and name, when first and last named (the Marquez reads).
    "ol_datasets": Table(
        "namespace TEXT NOT NULL, name TEXT NOT NULL, first_us BIGINT NOT NULL, "
        "last_us BIGINT NOT NULL",
        "namespace, name",
    ),
    # When each OpenLineage run first named each dataset it read: which version it read.
    "ol_consumed": Table(
        "reader TEXT NOT NULL, input_name TEXT NOT NULL, time_us BIGINT NOT NULL",
        "reader, input_name",
        ("input_name",),
    ),
    # Which job read (``in``) or wrote (``out``) which dataset: the job/dataset graph.
    "ol_job_datasets": Table(
        "namespace TEXT NOT NULL, name TEXT NOT NULL, ds_namespace TEXT NOT NULL, "
        "ds_name TEXT NOT NULL, direction TEXT NOT NULL",
        "namespace, name, ds_namespace, ds_name, direction",
        ("ds_namespace, ds_name",),
    ),
}


def _dataset_ops(
    job: tuple[str, str] | None, datasets: Iterable[DatasetRef], direction: str, time_us: int
) -> Iterator[Op]:
    """Note each dataset (first and last seen) and, for a job, its edge to the job."""
    for d in datasets:
        yield (
            "INSERT INTO {ol_datasets} (namespace, name, first_us, last_us) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (namespace, name) DO UPDATE SET "
            "first_us = CASE WHEN excluded.first_us < {ol_datasets}.first_us "
            "THEN excluded.first_us ELSE {ol_datasets}.first_us END, "
            "last_us = CASE WHEN excluded.last_us > {ol_datasets}.last_us "
            "THEN excluded.last_us ELSE {ol_datasets}.last_us END",
            (d.namespace, d.name, time_us, time_us),
        )
        if job is not None:
            yield (
                "INSERT INTO {ol_job_datasets} (namespace, name, ds_namespace, ds_name, "
                "direction) VALUES (?, ?, ?, ?, ?) ON CONFLICT "
                "(namespace, name, ds_namespace, ds_name, direction) DO NOTHING",
                (*job, d.namespace, d.name, direction),
            )


def _static_ops(e: OpenLineageReceived) -> Iterator[Op]:
    """A JobEvent's or DatasetEvent's datasets (and a JobEvent's job edges)."""
    try:
        document = decode(e.event)
        time_us = parse_event_time(document.get("eventTime"))
    except ValueError:
        return
    job = document.get("job")
    key = None
    named = isinstance(job, dict) and isinstance(job.get("namespace"), str)
    if named and isinstance(job.get("name"), str):  # type: ignore[union-attr]
        key = (job["namespace"], job["name"])  # type: ignore[index]
    if e.kind == "DatasetEvent" or key is None:
        yield from _dataset_ops(None, static_datasets(document), "in", time_us)
        return
    yield from _dataset_ops(key, _datasets(document.get("inputs")), "in", time_us)
    yield from _dataset_ops(key, _datasets(document.get("outputs")), "out", time_us)


def artifact_ops(e: OpenLineageReceived, c: EventContext) -> Iterable[Op]:
    """Fold one OpenLineage event into the artifacts views (artifacts and lineage edges)."""
    return _artifact_ops(e, c, deferred=False)


def artifact_ops_deferred(e: OpenLineageReceived, c: EventContext) -> Iterable[Op]:
    """:func:`artifact_ops` but the root run ids of the run's tree, left to
    :func:`normalise_artifacts` (see :func:`~projections.openlineage.run_ops_deferred`)."""
    return _artifact_ops(e, c, deferred=True)


def _artifact_ops(e: OpenLineageReceived, c: EventContext, *, deferred: bool) -> Iterator[Op]:
    f = facts_of(e)
    if f is None:
        yield from _static_ops(e)
        return
    x = f.run_id
    job = (f.namespace, f.name)
    yield from _dataset_ops(job, f.inputs, "in", f.time_us)
    yield from _dataset_ops(job, f.outputs, "out", f.time_us)
    yield from tree_ops("ol_artifact_tree", f)
    for d in f.outputs:
        name = d.artifact_name
        artifact_id = artifact_id_for("output", d.namespace, d.name, x)
        metadata = {"openlineage.namespace": d.namespace, "openlineage.name": d.name}
        yield (
            "INSERT INTO {artifact_versions} (name, last_version) SELECT ?, 1 WHERE NOT EXISTS "
            "(SELECT 1 FROM {artifacts} WHERE artifact_id = ?) ON CONFLICT (name) "
            "DO UPDATE SET last_version = {artifact_versions}.last_version + 1",
            (name, artifact_id),
        )
        yield (
            "INSERT INTO {artifacts} (artifact_id, name, version, uri, artifact_type, data_type, "
            "materializer, content_hash, size_bytes, metadata, run_id, step_run_id, output_name, "
            "created_at_us, position) VALUES (?, ?, (SELECT last_version FROM "
            "{artifact_versions} WHERE name = ?), ?, 'DataArtifact', NULL, NULL, ?, NULL, ?, "
            "?, ?, ?, ?, ?) ON CONFLICT (artifact_id) DO UPDATE SET "
            "content_hash = COALESCE({artifacts}.content_hash, excluded.content_hash), "
            "created_at_us = CASE WHEN excluded.created_at_us < {artifacts}.created_at_us "
            "THEN excluded.created_at_us ELSE {artifacts}.created_at_us END",
            (
                *(artifact_id, name, name, name, d.version, to_json(metadata), x, x, name),
                *(f.time_us, c.position),
            ),
        )
        # Only readers that named the dataset no earlier than this version was
        # made can read it (its time only ever moves earlier); the others keep theirs.
        yield from _relink(
            name,
            artifact_id_for("source", d.namespace, d.name),
            "time_us >= (SELECT created_at_us FROM {artifacts} WHERE artifact_id = ?)",
            (artifact_id,),
        )
    for d in f.inputs:
        yield from _consumed(d.namespace, d.name, d.artifact_name, x, f.time_us, c)
    if deferred:
        yield ("UPDATE {ol_artifact_tree} SET dirty = 1 WHERE run_id = ?", (x,))
    else:
        yield from _normalise_artifacts(x)


def _consumed(
    namespace: str, dataset: str, name: str, x: str, time_us: int, c: EventContext
) -> Iterator[Op]:
    """A consumed edge from the version the run read (see :func:`_relink`)."""
    source_id = artifact_id_for("source", namespace, dataset)
    yield (
        "INSERT INTO {ol_consumed} (reader, input_name, time_us) VALUES (?, ?, ?) "
        "ON CONFLICT (reader, input_name) DO UPDATE SET time_us = CASE WHEN "
        "excluded.time_us < {ol_consumed}.time_us THEN excluded.time_us "
        "ELSE {ol_consumed}.time_us END",
        (x, name, time_us),
    )
    # A source artifact stands for the dataset as no run wrote it, when this run
    # read it before any run (known so far) produced it.
    produced = (
        "SELECT 1 FROM {artifacts} a WHERE a.name = ? AND a.output_name <> 'source' "
        "AND a.step_run_id <> ? AND a.created_at_us <= ?"
    )
    needed = (
        f"NOT EXISTS ({produced}) "
        "AND NOT EXISTS (SELECT 1 FROM {artifacts} WHERE artifact_id = ?)"
    )
    yield (
        f"INSERT INTO {{artifact_versions}} (name, last_version) SELECT ?, 1 WHERE {needed} "
        "ON CONFLICT (name) DO UPDATE SET last_version = {artifact_versions}.last_version + 1",
        (name, name, x, time_us, source_id),
    )
    metadata = {"openlineage.namespace": namespace, "openlineage.name": dataset}
    yield (
        "INSERT INTO {artifacts} (artifact_id, name, version, uri, artifact_type, data_type, "
        "materializer, content_hash, size_bytes, metadata, run_id, step_run_id, output_name, "
        "created_at_us, position) SELECT ?, ?, (SELECT last_version FROM {artifact_versions} "
        "WHERE name = ?), ?, 'DataArtifact', NULL, NULL, NULL, NULL, ?, '', '', 'source', ?, ? "
        f"WHERE {needed} ON CONFLICT (artifact_id) DO NOTHING",
        (
            *(source_id, name, name, name, to_json(metadata), time_us, c.position),
            *(name, x, time_us, source_id),
        ),
    )
    yield (
        "INSERT INTO {artifact_consumers} (step_run_id, input_name, artifact_id, run_id, "
        "position) VALUES (?, ?, ?, ?, ?) ON CONFLICT (step_run_id, input_name) DO NOTHING",
        (x, name, source_id, x, c.position),
    )
    # No version changed: only this reader (new, or named it earlier) may read another.
    yield from _relink(name, source_id, "reader = ?", (x,), reader=x)


def _relink(
    name: str,
    source_id: str,
    readers: str,
    reader_params: tuple[str, ...],
    *,
    reader: str | None = None,
) -> Iterator[Op]:
    """Point every OpenLineage reader of dataset ``name`` at the version it read.

    That is the newest version another run produced no later than the reader's
    earliest event naming the dataset (by ``created_at_us``, then artifact id),
    else the dataset's source artifact: decided by event times, so a producer
    that arrives after its readers still becomes their input. A source artifact
    no reader needs any more is dropped. Only the readers ``readers`` (an SQL
    condition on ``ol_consumed`` bound to ``reader_params``) are reconsidered:
    the caller knows no other reader's answer changed, and rewriting every
    reader of a popular dataset on each event would cost each event more than the last.

    ``reader``: only that reader changed, and only by naming the dataset
    earlier (no version changed). It can then only move to an older version or
    to the source, never away from the source, so the source's time is the
    earlier of its own and the reader's, without a walk over all its readers.
    """
    consumers = f"SELECT reader FROM {{ol_consumed}} WHERE input_name = ? AND {readers}"
    yield (
        "UPDATE {artifact_consumers} SET artifact_id = COALESCE((SELECT a.artifact_id FROM "
        "{artifacts} a WHERE a.name = {artifact_consumers}.input_name "
        "AND a.output_name <> 'source' AND a.step_run_id <> {artifact_consumers}.step_run_id "
        "AND a.created_at_us <= (SELECT o.time_us FROM {ol_consumed} o WHERE "
        "o.reader = {artifact_consumers}.step_run_id AND "
        "o.input_name = {artifact_consumers}.input_name) "
        "ORDER BY a.created_at_us DESC, a.artifact_id DESC LIMIT 1), ?) "
        f"WHERE input_name = ? AND step_run_id IN ({consumers})",
        (source_id, name, name, *reader_params),
    )
    yield (
        "DELETE FROM {artifacts} WHERE artifact_id = ? AND NOT EXISTS "
        "(SELECT 1 FROM {artifact_consumers} WHERE artifact_id = ?)",
        (source_id, source_id),
    )
    # A source is as old as its earliest reader (whichever arrived first).
    if reader is not None:
        yield (
            "UPDATE {artifacts} SET created_at_us = (SELECT CASE WHEN o.time_us < "
            "{artifacts}.created_at_us THEN o.time_us ELSE {artifacts}.created_at_us END "
            "FROM {ol_consumed} o WHERE o.reader = ? AND o.input_name = ?) "
            "WHERE artifact_id = ? AND EXISTS (SELECT 1 FROM {artifact_consumers} c "
            "WHERE c.step_run_id = ? AND c.input_name = ? AND c.artifact_id = ?)",
            (reader, name, source_id, reader, name, source_id),
        )
        return
    yield (
        "UPDATE {artifacts} SET created_at_us = COALESCE((SELECT MIN(o.time_us) FROM "
        "{ol_consumed} o JOIN {artifact_consumers} c ON c.step_run_id = o.reader "
        "AND c.input_name = o.input_name WHERE c.artifact_id = ?), created_at_us) "
        "WHERE artifact_id = ?",
        (source_id, source_id),
    )


def _normalise_artifacts(x: str) -> Iterator[Op]:
    """Give the rows of ``x`` and of the runs that moved into its tree their root's run id.

    Only those (``dirty`` in the tree, placeholders, and ``x``): the others
    carry their root's id already. The root run gets its name.
    """
    root = root_of("ol_artifact_tree")
    changed = (
        f"SELECT run_id FROM {{ol_artifact_tree}} WHERE root_run_id = {root} "
        "AND (dirty = 1 OR seen = 0 OR run_id = ?)"
    )
    for table in ("artifacts", "artifact_consumers"):
        yield (
            f"UPDATE {{{table}}} SET run_id = {root} WHERE run_id IN ({changed}) "
            f"AND run_id <> {root}",
            (x, x, x, x),
        )
    yield (
        f"UPDATE {{ol_artifact_tree}} SET dirty = 0 WHERE dirty = 1 AND root_run_id = {root}",
        (x,),
    )


def normalise_artifacts(runs: Sequence[str]) -> Iterator[Op]:
    """:func:`_normalise_artifacts` for the trees of ``runs`` at once (up to
    :data:`~projections.openlineage.REFRESH_RUNS`), after their events'
    :func:`artifact_ops_deferred`: each row of a run marked ``dirty`` or a
    placeholder in those trees gets its own root's run id, each root its name.
    """
    ids = padded(runs)
    roots = roots_of("ol_artifact_tree")
    changed = (
        f"SELECT run_id FROM {{ol_artifact_tree}} WHERE root_run_id IN ({roots}) "
        "AND (dirty = 1 OR seen = 0)"
    )
    for table in ("artifacts", "artifact_consumers"):
        yield (
            f"UPDATE {{{table}}} SET run_id = (SELECT r.root_run_id FROM {{ol_artifact_tree}} r "
            f"WHERE r.run_id = {{{table}}}.run_id) "
            f"WHERE run_id IN ({changed} AND run_id <> root_run_id)",
            ids,
        )
    yield (
        f"UPDATE {{ol_artifact_tree}} SET dirty = 0 WHERE dirty = 1 AND root_run_id IN ({roots})",
        ids,
    )
