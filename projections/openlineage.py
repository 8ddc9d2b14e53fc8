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

This module holds the runs projection's part and what both share (the tree
operations); ``openlineage_artifacts.py`` the artifacts projection's part.
"""

from __future__ import annotations

import functools
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence

from eventstore import OpenLineageReceived
from eventstore.openlineage import (
    OPENLINEAGE_NAMESPACE,
    RunFacts,
    decode,
    parse_event_time,
    run_facts,
)

from .definition import EventContext, Op, Table, to_json

__all__ = [
    "REFRESH_RUNS",
    "RUN_TABLES",
    "TREE_COLUMNS",
    "artifact_id_for",
    "event_time",
    "facts_of",
    "padded",
    "refresh_runs",
    "root_of",
    "roots_of",
    "run_ops",
    "run_ops_deferred",
    "tree_ops",
]

#: ``dirty``: the run changed tree (or is new) since its derived rows were written.
TREE_COLUMNS = (
    "run_id TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, "
    "raw_run_id TEXT NOT NULL, parent_run_id TEXT, root_hint TEXT, "
    "root_run_id TEXT NOT NULL, seen INTEGER NOT NULL, dirty INTEGER NOT NULL DEFAULT 1"
)

#: Tables the runs projection adds for OpenLineage runs.
RUN_TABLES = {
    "ol_run_tree": Table(TREE_COLUMNS, "run_id", ("root_run_id",)),
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
_STEP_STATUSES = ("running", "completed", "failed", "cached", "skipped", "stopped")


# Each reader of a dataset names its source: the same id, asked for again and again.
@functools.lru_cache(maxsize=4096)
def artifact_id_for(kind: str, *parts: str) -> str:
    """The id of a dataset's artifact: ``output`` (namespace, name, producing run) or
    ``source`` (namespace, name); name-based, so every projection derives the same."""
    return str(uuid.uuid5(OPENLINEAGE_NAMESPACE, "\n".join((kind, *parts))))


#: What :func:`facts_of` read from the events most recently asked about, per thread
#: (an as-of replay runs beside the live views): id -> (event, facts). The runs
#: and the artifacts projections both read every event, the fold hands each of
#: them a whole chunk in turn, so one entry missed every time and each event was
#: parsed twice.
_recent_facts = threading.local()
#: Events remembered per thread: a follower's batches, and the end of a long chunk.
_RECENT_FACTS = 2048


def facts_of(event: OpenLineageReceived) -> RunFacts | None:
    """What a stored RunEvent says about its run (None for static events or odd shapes)."""
    recent: dict[int, tuple[OpenLineageReceived, RunFacts | None]] | None = getattr(
        _recent_facts, "entries", None
    )
    if recent is None:
        recent = _recent_facts.entries = {}
    found = recent.get(id(event))
    if found is not None and found[0] is event:  # the id of a live object is its own
        return found[1]
    facts = _read_facts(event)
    if len(recent) >= _RECENT_FACTS:
        del recent[next(iter(recent))]  # the oldest: dicts keep insertion order
    recent[id(event)] = (event, facts)
    return facts


def _read_facts(event: OpenLineageReceived) -> RunFacts | None:
    if event.kind != "RunEvent":
        return None
    try:
        return run_facts(decode(event.event), event.key)
    except ValueError:
        # Stored by an older rule or imported: the views skip what they cannot read.
        return None


def event_time(event: OpenLineageReceived) -> int | None:
    """The event's eventTime in microseconds (None when unreadable)."""
    try:
        return parse_event_time(decode(event.event).get("eventTime"))
    except ValueError:
        return None


def tree_ops(tree: str, f: RunFacts) -> Iterator[Op]:
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
    # A run whose root changes is marked dirty: its derived rows are rewritten.
    new_root = (
        f"COALESCE((SELECT h.root_run_id FROM {t} h WHERE h.run_id = {t}.root_hint), "
        f"{t}.root_hint, (SELECT p.root_run_id FROM {t} p WHERE p.run_id = {t}.parent_run_id), "
        f"{t}.run_id)"
    )
    root_of_run = f"(SELECT r.root_run_id FROM {t} r WHERE r.run_id = ?)"
    for run_id in ([parent.run_id] if parent is not None else []) + [x]:
        yield (
            f"UPDATE {t} SET dirty = CASE WHEN root_run_id = {new_root} THEN dirty ELSE 1 END, "
            f"root_run_id = {new_root} WHERE run_id = ?",
            (run_id,),
        )
        yield (
            f"UPDATE {t} SET root_run_id = {root_of_run}, dirty = 1 "
            f"WHERE root_run_id = ? AND root_run_id <> {root_of_run}",
            (run_id, run_id, run_id),
        )


def root_of(tree: str) -> str:
    """SQL for the root of the run bound to its one ``?``."""
    return f"(SELECT root_run_id FROM {{{tree}}} WHERE run_id = ?)"


# -- the runs projection -------------------------------------------------------


def run_ops(e: OpenLineageReceived, c: EventContext) -> Iterable[Op]:
    """Fold one OpenLineage event into the runs views (runs, steps, run metadata)."""
    return _run_ops(e, c, deferred=False)


def run_ops_deferred(e: OpenLineageReceived, c: EventContext) -> Iterable[Op]:
    """:func:`run_ops` but the rewrite of the run tree's derived rows, left to
    :func:`refresh_runs`: the run is marked ``dirty`` instead.

    A fold (:mod:`projections.fold`) takes consecutive OpenLineage events this
    way and refreshes each tree they touched once, not once an event: a DAG
    run's tasks each rewrote the whole tree's derived rows.
    """
    return _run_ops(e, c, deferred=True)


def _run_ops(e: OpenLineageReceived, c: EventContext, *, deferred: bool) -> Iterator[Op]:
    f = facts_of(e)
    time_us = f.time_us if f is not None else event_time(e)
    if time_us is not None:
        yield (
            "INSERT INTO {ol_events} (position, time_us, kind) VALUES (?, ?, ?) "
            "ON CONFLICT (position) DO NOTHING",
            (c.position, time_us, e.kind),
        )
    if f is None:
        return
    yield from tree_ops("ol_run_tree", f)
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
    if deferred:
        yield ("UPDATE {ol_run_tree} SET dirty = 1 WHERE run_id = ?", (f.run_id,))
    else:
        yield from _refresh_runs(f.run_id)


#: Runs a deferred refresh names in one statement (padded with NULLs: one text).
REFRESH_RUNS = 64


def padded(runs: Sequence[str]) -> tuple[str | None, ...]:
    """``runs`` and NULLs up to :data:`REFRESH_RUNS`: the parameters of :func:`roots_of`."""
    if len(runs) > REFRESH_RUNS:
        raise ValueError(f"at most {REFRESH_RUNS} runs a refresh, not {len(runs)}")
    return (*runs, *(None,) * (REFRESH_RUNS - len(runs)))


def roots_of(tree: str) -> str:
    """SQL for the roots of the :data:`REFRESH_RUNS` runs bound to its ``?`` (NULLs match none)."""
    marks = ", ".join(["?"] * REFRESH_RUNS)
    return f"SELECT root_run_id FROM {{{tree}}} WHERE run_id IN ({marks})"


def refresh_runs(runs: Sequence[str]) -> Iterator[Op]:
    """:func:`_refresh_runs` for the trees of ``runs`` at once (up to :data:`REFRESH_RUNS`).

    After their events' :func:`run_ops_deferred`: the derived rows of every run
    marked ``dirty`` in those trees and of their placeholders, then each root's
    run row, from the merged state, as the events' own refreshes would have
    left them (each tree's refresh reads only its tree's state).
    """
    ids = padded(runs)
    roots = roots_of("ol_run_tree")
    changed = (
        f"SELECT run_id FROM {{ol_run_tree}} WHERE root_run_id IN ({roots}) "
        "AND (dirty = 1 OR seen = 0)"
    )
    tree_min = (
        "(SELECT MIN(m.first_us) FROM {ol_run_state} m JOIN {ol_run_tree} mt "
        "ON mt.run_id = m.run_id WHERE mt.root_run_id = t.root_run_id)"
    )
    # Former roots now inside a tree stop being pipeline runs.
    yield (f"DELETE FROM {{runs}} WHERE run_id IN ({changed} AND run_id <> root_run_id)", ids)
    yield (f"DELETE FROM {{steps}} WHERE step_run_id IN ({changed})", ids)
    yield (f"DELETE FROM {{run_metadata}} WHERE step_run_id IN ({changed})", ids)
    yield (
        f"DELETE FROM {{run_metadata}} WHERE run_id IN ({changed}) AND step_run_id = ''",
        ids,
    )
    started = f"COALESCE(s.start_us, s.first_us, {tree_min})"
    duration = f"CASE WHEN s.term_us >= {started} THEN s.term_us - {started} END"
    yield (_step_rows_insert(started, duration, changed), ("{}", "[]", *ids))
    yield (f"DELETE FROM {{runs}} WHERE run_id IN ({roots})", ids)
    yield (
        _root_run_insert(started, duration) + f"WHERE t.run_id IN ({roots})",
        ("{}", '["openlineage"]', *ids),
    )
    yield (
        "INSERT INTO {run_metadata} (run_id, step_run_id, key, value, position) "
        "SELECT t.root_run_id, CASE WHEN o.run_id = t.root_run_id THEN '' ELSE o.run_id END, "
        "o.key, o.value, 0 FROM {ol_run_shown} o JOIN {ol_run_tree} t ON t.run_id = o.run_id "
        f"WHERE o.run_id IN ({changed})",
        ids,
    )
    yield (
        f"UPDATE {{ol_run_tree}} SET dirty = 0 WHERE dirty = 1 AND root_run_id IN ({roots})",
        ids,
    )


def _step_rows_insert(started: str, duration: str, changed: str) -> str:
    """The step rows of the runs ``changed`` (SQL) that are not their tree's root.

    ``started`` and ``duration`` are SQL over their state ``s``; the parameters
    are theirs, the parameters and the upstream steps, then ``changed``'s.
    """
    return (
        "INSERT INTO {steps} (step_run_id, run_id, step_name, status, started_at_us, "
        "finished_at_us, duration_us, parameters, cache_key, upstream_steps, error, position) "
        f"SELECT t.run_id, t.root_run_id, t.name, COALESCE(s.term_status, 'running'), {started}, "
        f"s.term_us, {duration}, ?, NULL, ?, s.error, COALESCE(s.position, 0) "
        "FROM {ol_run_tree} t LEFT JOIN {ol_run_state} s ON s.run_id = t.run_id "
        f"WHERE t.run_id IN ({changed}) AND t.run_id <> t.root_run_id"
    )


def _root_run_insert(started: str, duration: str) -> str:
    """The run row of a tree's root ``t``, from its state ``s`` and its steps (add a WHERE).

    ``started`` and ``duration`` are SQL over ``s`` (the tree's earliest time
    when the root has none); its parameters are the config and tags, then theirs.
    """
    counts = ", ".join(
        f"(SELECT COUNT(*) FROM {{steps}} WHERE run_id = t.run_id AND status = '{status}')"
        for status in _STEP_STATUSES
    )
    return (
        "INSERT INTO {runs} (run_id, pipeline_name, run_name, stack_id, orchestrator_run_id, "
        "config, tags, status, started_at_us, finished_at_us, duration_us, error, "
        + ", ".join(f"steps_{status}" for status in _STEP_STATUSES)
        + ", position) "
        "SELECT t.run_id, t.namespace || '/' || t.name, t.raw_run_id, NULL, t.raw_run_id, ?, ?, "
        "CASE WHEN s.term_status IS NOT NULL THEN s.term_status "
        "WHEN EXISTS (SELECT 1 FROM {steps} WHERE run_id = t.run_id) AND NOT EXISTS "
        "(SELECT 1 FROM {steps} WHERE run_id = t.run_id AND status = 'running') "
        f"THEN 'open' ELSE 'running' END, {started}, s.term_us, {duration}, "
        f"s.error, {counts}, COALESCE(s.position, (SELECT MIN(m.position) FROM "
        "{ol_run_state} m JOIN {ol_run_tree} mt ON mt.run_id = m.run_id "
        "WHERE mt.root_run_id = t.run_id)) "
        "FROM {ol_run_tree} t LEFT JOIN {ol_run_state} s ON s.run_id = t.run_id "
    )


def _refresh_runs(x: str) -> Iterator[Op]:
    """Rewrite the derived rows the event changed, in the tree holding run ``x``.

    Those of ``x`` itself, of the runs that moved into this tree (``dirty``) and
    of placeholders (their times come from the tree), then the root's run row
    (its status and step counts depend on every step): a large DAG run costs
    each event a few rows, not a rewrite of all its steps.
    """
    root = root_of("ol_run_tree")
    changed = (
        f"SELECT run_id FROM {{ol_run_tree}} WHERE root_run_id = {root} "
        "AND (dirty = 1 OR seen = 0 OR run_id = ?)"
    )
    tree_min = (
        "(SELECT MIN(m.first_us) FROM {ol_run_state} m JOIN {ol_run_tree} mt "
        f"ON mt.run_id = m.run_id WHERE mt.root_run_id = {root})"
    )
    # Former roots now inside this tree stop being pipeline runs.
    yield (
        f"DELETE FROM {{runs}} WHERE run_id IN ({changed}) AND run_id <> {root}",
        (x, x, x),
    )
    yield (f"DELETE FROM {{steps}} WHERE step_run_id IN ({changed})", (x, x))
    # Two statements, not one with OR: that one walked every pipeline run's
    # metadata (``step_run_id = ''``) on each event.
    yield (f"DELETE FROM {{run_metadata}} WHERE step_run_id IN ({changed})", (x, x))
    yield (
        f"DELETE FROM {{run_metadata}} WHERE run_id IN ({changed}) AND step_run_id = ''",
        (x, x),
    )
    started = f"COALESCE(s.start_us, s.first_us, {tree_min})"
    # A producer's clock can stamp the end before the start: no duration beats a negative one.
    duration = f"CASE WHEN s.term_us >= {started} THEN s.term_us - {started} END"
    yield (
        _step_rows_insert(started, duration, changed),
        (x, x, x, "{}", "[]", x, x),  # started, then twice in the duration
    )
    yield (f"DELETE FROM {{runs}} WHERE run_id = {root}", (x,))
    yield (
        _root_run_insert(started, duration) + f"WHERE t.run_id = {root}",
        ("{}", '["openlineage"]', x, x, x, x),
    )
    yield (
        "INSERT INTO {run_metadata} (run_id, step_run_id, key, value, position) "
        "SELECT t.root_run_id, CASE WHEN o.run_id = t.root_run_id THEN '' ELSE o.run_id END, "
        "o.key, o.value, 0 FROM {ol_run_shown} o JOIN {ol_run_tree} t ON t.run_id = o.run_id "
        f"WHERE o.run_id IN ({changed})",
        (x, x),
    )
    yield (
        f"UPDATE {{ol_run_tree}} SET dirty = 0 WHERE dirty = 1 AND root_run_id = {root}",
        (x,),
    )
