"""A run's steps as timeline rows: bars, tries, and nested child jobs under their parents.

An OpenLineage task run names its parent in ``openlineage.parent``
(``NAMESPACE/JOB run RUNID``). A task whose parent is the run itself (the DAG
run) is a step of the run, not nested; a job whose parent is another step of
the run (a Spark job started by a task) is drawn right under that step,
indented one level per generation, and links to it. A parent the run does not
hold (a native step naming some outside job) still shows, as text.
"""

from __future__ import annotations

import re
from typing import Any

from eventstore.openlineage import run_uuid
from projections.queries import RunView, StepView

__all__ = ["timeline"]

#: The deepest indentation drawn (deeper generations stay at this level).
MAX_DEPTH = 3
_PARENT = re.compile(r"^(?P<job>.+) run (?P<run>\S+)$")


def timeline(run: RunView) -> list[dict[str, Any]]:
    """Each step with its bar (offset and width in thousandths of the run), try and parent.

    Rows come in start order, except that a child job follows its parent step
    (and the parent's other children), so the nesting reads top to bottom.
    """
    steps: list[StepView] = run.steps
    if not steps:
        return []
    start = min(s.started_at for s in steps)
    ends = [s.finished_at or s.started_at for s in steps]
    if run.finished_at is not None:
        ends.append(run.finished_at)
    span = max((max(ends) - start).total_seconds(), 1e-6)
    tries: dict[str, int] = {}
    rows: dict[str, dict[str, Any]] = {}
    for step in steps:
        tries[step.name] = tries.get(step.name, 0) + 1
        offset = (step.started_at - start).total_seconds() / span
        length = (step.duration_s or 0.0) / span
        rows[step.step_run_id] = {
            "step": step,
            "try": tries[step.name],
            "x": round(1000 * offset, 1),
            "width": max(round(1000 * min(length, 1 - offset), 1), 3.0),
            "offset_s": (step.started_at - start).total_seconds(),
            "parent": None,
            "parent_id": None,
            "depth": 0,
        }
    for step in steps:
        row = rows[step.step_run_id]
        row["retried"] = tries[step.name] > 1
        named = parent_of(step)
        if named is None:
            continue
        parent_id = _parent_step_id(named, run)
        if parent_id == step.step_run_id or parent_id == run.run_id:
            continue  # a task of the DAG run: a step of the run, not nested
        if parent_id in rows:
            parent = rows[parent_id]
            row["parent_id"] = parent_id
            try_note = f" (try {parent['try']})" if tries[parent["step"].name] > 1 else ""
            row["parent"] = parent["step"].name + try_note
        else:
            row["parent"] = named
    return _nested_order(list(rows.values()), rows)


def parent_of(step: StepView) -> str | None:
    """A nested (OpenLineage child) step's parent, when its metadata names one."""
    for key in ("parent_step", "openlineage.parent", "parent"):
        value = step.metadata.get(key) or step.parameters.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, dict):
            name = value.get("job", {}).get("name") if isinstance(value.get("job"), dict) else None
            if isinstance(name, str):
                return name
    return None


def _parent_step_id(named: str, run: RunView) -> str | None:
    """The id the views give the run named by ``NAMESPACE/JOB run RUNID``, if it is one."""
    found = _PARENT.match(named)
    if found is None:
        return None
    raw = found.group("run")
    if raw == run.orchestrator_run_id:
        return run.run_id
    return run_uuid(raw)


def _nested_order(
    ordered: list[dict[str, Any]], rows: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Roots in start order, each followed depth first by its children in start order."""
    children: dict[str, list[dict[str, Any]]] = {}
    roots = []
    for row in ordered:
        parent_id = row["parent_id"]
        if parent_id is None or not _reaches_root(row, rows):
            row["parent_id"] = None  # a cycle of parents: each shows at the top level
            roots.append(row)
        else:
            children.setdefault(parent_id, []).append(row)
    out: list[dict[str, Any]] = []
    stack = [(row, 0) for row in reversed(roots)]
    while stack:
        row, depth = stack.pop()
        # A parent outside the run (named as text) still indents its child once.
        row["depth"] = min(max(depth, 1 if row["parent"] else 0), MAX_DEPTH)
        out.append(row)
        kids = children.get(row["step"].step_run_id, [])
        stack.extend((kid, depth + 1) for kid in reversed(kids))
    return out


def _reaches_root(row: dict[str, Any], rows: dict[str, dict[str, Any]]) -> bool:
    """Whether following parents from ``row`` ends at a root (and not in a cycle)."""
    seen = {row["step"].step_run_id}
    while row["parent_id"] is not None:
        row = rows[row["parent_id"]]
        if row["step"].step_run_id in seen:
            return False
        seen.add(row["step"].step_run_id)
    return True
