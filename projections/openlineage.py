"""OpenLineage events folded into the runs and artifacts views, whatever order they arrive in.

The log keeps each OpenLineage event whole (``openlineage.received``); these
handlers derive the same rows native runs have, so ``run list``, ``run
describe``, ``pipeline list`` and ``artifact lineage`` show OpenLineage runs
next to native ones:

- a run without a ``ParentRunFacet`` is a pipeline run (pipeline =
  ``namespace/name`` of its job; run name = its runId); a run with a parent is a
  step run of its **root** run, its parent named in its metadata
  (``openlineage.parent``): an Airflow DAG run, its task runs and a Spark job
  started by a task form one pipeline run;
- each output dataset becomes an artifact named ``namespace/name``, one version
  per producing run (the dataset version facet, when present, as its
  ``content_hash``); each input dataset a ``consumed`` edge to the version the
  run read: the newest another run produced by the reader's time, decided by
  event times, so a producer arriving after its readers still links them
  (or a ``source`` artifact while no run produced it).

Order tolerance. Every handler only merges, with operations that commute: the
earliest time, the latest end event by ``(eventTime, rank, content key)``
(so terminal states stick and a late START or RUNNING never reopens a run; a
COMPLETE before its START still yields one completed run with both times), a
facet value from the event with the highest such key. The hierarchy is kept in
a small tree table per projection (``ol_run_tree``, ``ol_artifact_tree``):
every run points at its root, a parent or root named before it is seen gets a
placeholder row, and each event re-roots the runs that pointed at it or at its
parent. The derived rows of the event's whole tree are then rewritten from the
merged state, so the views after any permutation or duplication of the events
are the same (``tests/test_openlineage_views.py`` checks it with Hypothesis).
Only ``position`` columns, which record where a row was last written, differ.

A root run that never sent an end event while all its steps ended shows the
status ``open`` (not ``running`` forever).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator

from eventstore import OpenLineageReceived
from eventstore.openlineage import (
    OPENLINEAGE_NAMESPACE,
    DatasetRef,
    RunFacts,
    decode,
    parse_event_time,
    run_facts,
    static_datasets,
)
from eventstore.openlineage.facts import datasets as _datasets

from .definition import EventContext, Op, Table, to_json

__all__ = [
    "ARTIFACT_TABLES",
    "RUN_TABLES",
    "artifact_ops",
    "facts_of",
    "run_ops",
]

_TREE_COLUMNS = (
    "run_id TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, "
    "raw_run_id TEXT NOT NULL, parent_run_id TEXT, root_hint TEXT, "
    "root_run_id TEXT NOT NULL, seen INTEGER NOT NULL"
)

#: Tables the runs projection adds for OpenLineage runs.
RUN_TABLES = {
    "ol_run_tree": Table(_TREE_COLUMNS, "run_id", ("root_run_id",)),
    "ol_run_state": Table(
        "run_id TEXT NOT NULL, first_us BIGINT NOT NULL, start_us BIGINT, term_key TEXT, "
        "term_status TEXT, term_us BIGINT, error TEXT, position BIGINT NOT NULL",
        "run_id",
    ),
    "ol_run_shown": Table(
        "run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, sort_key TEXT NOT NULL",
        "run_id, key",
    ),
    # Every stored OpenLineage event by its eventTime: the Marquez /events/lineage read.
    "ol_events": Table(
        "position BIGINT NOT NULL, time_us BIGINT NOT NULL, kind TEXT NOT NULL",
        "position",
        ("time_us, position",),
    ),
}
#: Tables the artifacts projection adds for OpenLineage runs and datasets.
ARTIFACT_TABLES = {
    "ol_artifact_tree": Table(_TREE_COLUMNS, "run_id", ("root_run_id",)),
    # Datasets by namespace and name, when first and last named (the Marquez reads).
    "ol_datasets": Table(
        "namespace TEXT NOT NULL, name TEXT NOT NULL, first_us BIGINT NOT NULL, "
        "last_us BIGINT NOT NULL",
        "namespace, name",
    ),
    # When each OpenLineage run first named each dataset it read: which version it read.
    "ol_consumed": Table(
        "step_run_id TEXT NOT NULL, input_name TEXT NOT NULL, time_us BIGINT NOT NULL",
        "step_run_id, input_name",
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

_STEP_STATUSES = ("running", "completed", "failed", "cached", "skipped", "stopped")


def facts_of(event: OpenLineageReceived) -> RunFacts | None:
    """What a stored RunEvent says about its run (None for static events or odd shapes)."""
    if event.kind != "RunEvent":
        return None
    try:
        return run_facts(decode(event.event), event.key)
    except ValueError:
        # Stored by an older rule or imported: the views skip what they cannot read.
        return None


def _event_time(event: OpenLineageReceived) -> int | None:
    try:
        return parse_event_time(decode(event.event).get("eventTime"))
    except ValueError:
        return None


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


def _tree_ops(tree: str, f: RunFacts) -> Iterator[Op]:
    """Merge the run, its parent and root into ``tree`` and re-root what pointed at them."""
    t = "{" + tree + "}"
    x, parent, root = f.run_id, f.parent, f.root
    if root is not None:
        yield (
            f"INSERT INTO {t} (run_id, namespace, name, raw_run_id, parent_run_id, root_hint, "
            "root_run_id, seen) VALUES (?, ?, ?, ?, NULL, NULL, ?, 0) "
            "ON CONFLICT (run_id) DO NOTHING",
            (root.run_id, root.namespace, root.name, root.raw_run_id, root.run_id),
        )
    hint = None if root is None else root.run_id
    if parent is not None:
        parent_hint = None if hint == parent.run_id else hint
        yield (
            f"INSERT INTO {t} (run_id, namespace, name, raw_run_id, parent_run_id, root_hint, "
            "root_run_id, seen) VALUES (?, ?, ?, ?, NULL, ?, ?, 0) "
            f"ON CONFLICT (run_id) DO UPDATE SET root_hint = COALESCE({t}.root_hint, "
            "excluded.root_hint)",
            (
                parent.run_id,
                parent.namespace,
                parent.name,
                parent.raw_run_id,
                parent_hint,
                parent.run_id,
            ),
        )
    yield (
        f"INSERT INTO {t} (run_id, namespace, name, raw_run_id, parent_run_id, root_hint, "
        "root_run_id, seen) VALUES (?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT (run_id) DO UPDATE SET "
        f"namespace = CASE WHEN {t}.seen = 0 THEN excluded.namespace ELSE {t}.namespace END, "
        f"name = CASE WHEN {t}.seen = 0 THEN excluded.name ELSE {t}.name END, "
        f"raw_run_id = CASE WHEN {t}.seen = 0 THEN excluded.raw_run_id ELSE {t}.raw_run_id END, "
        f"parent_run_id = COALESCE({t}.parent_run_id, excluded.parent_run_id), "
        f"root_hint = COALESCE({t}.root_hint, excluded.root_hint), seen = 1",
        (
            x,
            f.namespace,
            f.name,
            f.raw_run_id,
            None if parent is None else parent.run_id,
            hint,
            x,
        ),
    )
    # Each run named by this event gets its root again (its hint's root, else its
    # parent's, else itself); then every run that pointed at it follows.
    for run_id in ([parent.run_id] if parent is not None else []) + [x]:
        yield (
            f"UPDATE {t} SET root_run_id = COALESCE("
            f"(SELECT h.root_run_id FROM {t} h WHERE h.run_id = {t}.root_hint), {t}.root_hint, "
            f"(SELECT p.root_run_id FROM {t} p WHERE p.run_id = {t}.parent_run_id), {t}.run_id) "
            "WHERE run_id = ?",
            (run_id,),
        )
        yield (
            f"UPDATE {t} SET root_run_id = (SELECT r.root_run_id FROM {t} r WHERE r.run_id = ?) "
            "WHERE root_run_id = ?",
            (run_id, run_id),
        )


def _root(tree: str) -> str:
    """SQL for the root of the run bound to its one ``?``."""
    return f"(SELECT root_run_id FROM {{{tree}}} WHERE run_id = ?)"


# -- the runs projection -------------------------------------------------------


def run_ops(e: OpenLineageReceived, c: EventContext) -> Iterable[Op]:
    """Fold one OpenLineage event into the runs views (runs, steps, run metadata)."""
    time_us = _event_time(e)
    if time_us is not None:
        yield (
            "INSERT INTO {ol_events} (position, time_us, kind) VALUES (?, ?, ?) "
            "ON CONFLICT (position) DO NOTHING",
            (c.position, time_us, e.kind),
        )
    f = facts_of(e)
    if f is None:
        return
    yield from _tree_ops("ol_run_tree", f)
    status = f.status
    yield (
        "INSERT INTO {ol_run_state} (run_id, first_us, start_us, term_key, term_status, "
        "term_us, error, position) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (run_id) DO UPDATE SET "
        "first_us = CASE WHEN excluded.first_us < {ol_run_state}.first_us "
        "THEN excluded.first_us ELSE {ol_run_state}.first_us END, "
        "start_us = CASE WHEN {ol_run_state}.start_us IS NULL "
        "OR excluded.start_us < {ol_run_state}.start_us "
        "THEN excluded.start_us ELSE {ol_run_state}.start_us END, "
        + ", ".join(
            f"{column} = CASE WHEN excluded.term_key IS NOT NULL AND "
            "({ol_run_state}.term_key IS NULL OR excluded.term_key > {ol_run_state}.term_key) "
            f"THEN excluded.{column} ELSE {{ol_run_state}}.{column} END"
            for column in ("term_key", "term_status", "term_us", "error")
        )
        + ", position = CASE WHEN excluded.position < {ol_run_state}.position "
        "THEN excluded.position ELSE {ol_run_state}.position END",
        (
            f.run_id,
            f.time_us,
            f.time_us if f.event_type == "START" else None,
            None if status is None else f.sort_key,
            status,
            None if status is None else f.time_us,
            f.error if status is not None else None,
            c.position,
        ),
    )
    for key, value in f.shown.items():
        yield (
            "INSERT INTO {ol_run_shown} (run_id, key, value, sort_key) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, "
            "sort_key = excluded.sort_key WHERE excluded.sort_key > {ol_run_shown}.sort_key",
            (f.run_id, key, to_json(value), f.sort_key),
        )
    yield from _refresh_runs(f.run_id)


def _refresh_runs(x: str) -> Iterator[Op]:
    """Rewrite the runs, steps and metadata rows of the tree holding run ``x``."""
    root = _root("ol_run_tree")
    members = f"SELECT run_id FROM {{ol_run_tree}} WHERE root_run_id = {root}"
    tree_min = (
        "(SELECT MIN(m.first_us) FROM {ol_run_state} m JOIN {ol_run_tree} mt "
        f"ON mt.run_id = m.run_id WHERE mt.root_run_id = {root})"
    )
    yield (f"DELETE FROM {{runs}} WHERE run_id IN ({members} AND run_id <> {root})", (x, x))
    yield (f"DELETE FROM {{steps}} WHERE step_run_id IN ({members})", (x,))
    yield (f"DELETE FROM {{run_metadata}} WHERE run_id IN ({members})", (x,))
    started = f"COALESCE(s.start_us, s.first_us, {tree_min})"
    yield (
        "INSERT INTO {steps} (step_run_id, run_id, step_name, status, started_at_us, "
        "finished_at_us, duration_us, parameters, cache_key, upstream_steps, error, position) "
        f"SELECT t.run_id, t.root_run_id, t.name, COALESCE(s.term_status, 'running'), {started}, "
        f"s.term_us, s.term_us - {started}, ?, NULL, ?, s.error, COALESCE(s.position, 0) "
        "FROM {ol_run_tree} t LEFT JOIN {ol_run_state} s ON s.run_id = t.run_id "
        f"WHERE t.root_run_id = {root} AND t.run_id <> t.root_run_id",
        (x, x, "{}", "[]", x),
    )
    yield (f"DELETE FROM {{runs}} WHERE run_id = {root}", (x,))
    counts = ", ".join(
        f"(SELECT COUNT(*) FROM {{steps}} WHERE run_id = t.run_id AND status = '{status}')"
        for status in _STEP_STATUSES
    )
    yield (
        "INSERT INTO {runs} (run_id, pipeline_name, run_name, stack_id, orchestrator_run_id, "
        "config, tags, status, started_at_us, finished_at_us, duration_us, error, "
        + ", ".join(f"steps_{status}" for status in _STEP_STATUSES)
        + ", position) "
        "SELECT t.run_id, t.namespace || '/' || t.name, t.raw_run_id, NULL, t.raw_run_id, ?, ?, "
        "CASE WHEN s.term_status IS NOT NULL THEN s.term_status "
        "WHEN EXISTS (SELECT 1 FROM {steps} WHERE run_id = t.run_id) AND NOT EXISTS "
        "(SELECT 1 FROM {steps} WHERE run_id = t.run_id AND status = 'running') "
        f"THEN 'open' ELSE 'running' END, {started}, s.term_us, s.term_us - {started}, "
        f"s.error, {counts}, COALESCE(s.position, (SELECT MIN(m.position) FROM "
        "{ol_run_state} m JOIN {ol_run_tree} mt ON mt.run_id = m.run_id "
        "WHERE mt.root_run_id = t.run_id)) "
        "FROM {ol_run_tree} t LEFT JOIN {ol_run_state} s ON s.run_id = t.run_id "
        f"WHERE t.run_id = {root}",
        ("{}", '["openlineage"]', x, x, x),
    )
    yield (
        "INSERT INTO {run_metadata} (run_id, step_run_id, key, value, position) "
        "SELECT t.root_run_id, CASE WHEN o.run_id = t.root_run_id THEN '' ELSE o.run_id END, "
        "o.key, o.value, 0 FROM {ol_run_shown} o JOIN {ol_run_tree} t ON t.run_id = o.run_id "
        f"WHERE t.root_run_id = {root}",
        (x,),
    )


# -- the artifacts projection --------------------------------------------------


def _artifact_id(kind: str, *parts: str) -> str:
    return str(uuid.uuid5(OPENLINEAGE_NAMESPACE, "\n".join((kind, *parts))))


def artifact_ops(e: OpenLineageReceived, c: EventContext) -> Iterable[Op]:
    """Fold one OpenLineage event into the artifacts views (artifacts and lineage edges)."""
    f = facts_of(e)
    if f is None:
        yield from _static_ops(e)
        return
    x = f.run_id
    job = (f.namespace, f.name)
    yield from _dataset_ops(job, f.inputs, "in", f.time_us)
    yield from _dataset_ops(job, f.outputs, "out", f.time_us)
    yield from _tree_ops("ol_artifact_tree", f)
    yield (
        "INSERT INTO {artifact_steps} (step_run_id, run_id, step_name) VALUES (?, ?, ?) "
        "ON CONFLICT (step_run_id) DO NOTHING",
        (x, x, f.name),
    )
    for d in f.outputs:
        name = d.artifact_name
        artifact_id = _artifact_id("output", d.namespace, d.name, x)
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
        yield (
            "INSERT INTO {lineage_edges} (source_id, source_kind, target_id, target_kind, name, "
            "run_id, position) VALUES (?, 'step', ?, 'artifact', ?, ?, ?) "
            "ON CONFLICT (source_id, target_id, name) DO NOTHING",
            (x, artifact_id, name, x, c.position),
        )
        yield from _relink(name, _artifact_id("source", d.namespace, d.name))
    for d in f.inputs:
        yield from _consumed(d.namespace, d.name, d.artifact_name, x, f.time_us, c)
    yield from _normalise_artifacts(x)


def _consumed(
    namespace: str, dataset: str, name: str, x: str, time_us: int, c: EventContext
) -> Iterator[Op]:
    """A consumed edge from the version the run read (see :func:`_relink`)."""
    source_id = _artifact_id("source", namespace, dataset)
    yield (
        "INSERT INTO {ol_consumed} (step_run_id, input_name, time_us) VALUES (?, ?, ?) "
        "ON CONFLICT (step_run_id, input_name) DO UPDATE SET time_us = CASE WHEN "
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
    yield from _relink(name, source_id)
    yield (
        "INSERT INTO {lineage_edges} (source_id, source_kind, target_id, target_kind, name, "
        "run_id, position) SELECT c.artifact_id, 'artifact', c.step_run_id, 'step', "
        "c.input_name, c.run_id, ? FROM {artifact_consumers} c "
        "WHERE c.step_run_id = ? AND c.input_name = ? "
        "ON CONFLICT (source_id, target_id, name) DO NOTHING",
        (c.position, x, name),
    )


def _relink(name: str, source_id: str) -> Iterator[Op]:
    """Point every OpenLineage reader of dataset ``name`` at the version it read.

    That is the newest version another run produced no later than the reader's
    earliest event naming the dataset (by ``created_at_us``, then artifact id),
    else the dataset's source artifact: decided by event times, so a producer
    that arrives after its readers still becomes their input. A source artifact
    no reader needs any more is dropped.
    """
    consumers = "SELECT step_run_id FROM {ol_consumed} WHERE input_name = ?"
    yield (
        "UPDATE {artifact_consumers} SET artifact_id = COALESCE((SELECT a.artifact_id FROM "
        "{artifacts} a WHERE a.name = {artifact_consumers}.input_name "
        "AND a.output_name <> 'source' AND a.step_run_id <> {artifact_consumers}.step_run_id "
        "AND a.created_at_us <= (SELECT o.time_us FROM {ol_consumed} o WHERE "
        "o.step_run_id = {artifact_consumers}.step_run_id AND "
        "o.input_name = {artifact_consumers}.input_name) "
        "ORDER BY a.created_at_us DESC, a.artifact_id DESC LIMIT 1), ?) "
        f"WHERE input_name = ? AND step_run_id IN ({consumers})",
        (source_id, name, name),
    )
    yield (
        "UPDATE {lineage_edges} SET source_id = (SELECT c.artifact_id FROM "
        "{artifact_consumers} c WHERE c.step_run_id = {lineage_edges}.target_id "
        "AND c.input_name = {lineage_edges}.name) "
        f"WHERE source_kind = 'artifact' AND name = ? AND target_id IN ({consumers})",
        (name, name),
    )
    yield (
        "DELETE FROM {artifacts} WHERE artifact_id = ? AND NOT EXISTS "
        "(SELECT 1 FROM {artifact_consumers} WHERE artifact_id = ?)",
        (source_id, source_id),
    )
    # A source is as old as its earliest reader (whichever arrived first).
    yield (
        "UPDATE {artifacts} SET created_at_us = COALESCE((SELECT MIN(o.time_us) FROM "
        "{ol_consumed} o JOIN {artifact_consumers} c ON c.step_run_id = o.step_run_id "
        "AND c.input_name = o.input_name WHERE c.artifact_id = ?), created_at_us) "
        "WHERE artifact_id = ?",
        (source_id, source_id),
    )


def _normalise_artifacts(x: str) -> Iterator[Op]:
    """Give every row of the tree holding ``x`` its root's run id; name the root run."""
    root = _root("ol_artifact_tree")
    members = f"SELECT run_id FROM {{ol_artifact_tree}} WHERE root_run_id = {root}"
    for table in ("artifacts", "artifact_consumers", "artifact_steps", "lineage_edges"):
        yield (
            f"UPDATE {{{table}}} SET run_id = {root} WHERE run_id IN ({members} "
            f"AND run_id <> {root})",
            (x, x, x),
        )
    yield (f"DELETE FROM {{artifact_runs}} WHERE run_id IN ({members})", (x,))
    yield (
        "INSERT INTO {artifact_runs} (run_id, pipeline_name, run_name) "
        "SELECT t.run_id, t.namespace || '/' || t.name, t.raw_run_id FROM {ol_artifact_tree} t "
        f"WHERE t.run_id = {root}",
        (x,),
    )
