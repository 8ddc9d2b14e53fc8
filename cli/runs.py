"""``metaledger run``: list, describe and delete pipeline runs."""

from __future__ import annotations

from typing import Any

import click

from .context import (
    as_of_option,
    open_fresh_views,
    open_runs_store,
    parse_time,
    run_async,
    run_listing,
    run_on_store,
    run_on_views,
    stack_option,
)
from .errors import CLIError
from .output import (
    Column,
    Format,
    ListingCut,
    emit,
    format_duration,
    format_time,
    limit_options,
    mask_secrets,
    output_options,
    print_properties,
    print_table,
    report_cut,
    say,
    show_secrets_option,
    wide_option,
)

__all__ = ["describe_item", "run", "run_item", "step_item"]

#: "open": an OpenLineage run that sent no end event while all its steps ended.
_RUN_STATUSES = ("running", "open", "completed", "failed", "stopped")


def run_item(run: Any) -> dict[str, Any]:
    """The stable JSON shape of a run."""
    return {
        "run_id": run.run_id,
        "pipeline_name": run.pipeline_name,
        "run_name": run.run_name,
        "status": run.status,
        "stack": run.stack,
        "stack_id": run.stack_id,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_s": run.duration_s,
        "error": run.error,
        "step_counts": run.step_counts,
        "orchestrator_run_id": run.orchestrator_run_id,
        "config": run.config,
        "tags": run.tags,
    }


def step_item(step: Any) -> dict[str, Any]:
    """The stable JSON shape of a step run."""
    return {
        "step_run_id": step.step_run_id,
        "name": step.name,
        "status": step.status,
        "started_at": step.started_at,
        "finished_at": step.finished_at,
        "duration_s": step.duration_s,
        "inputs": step.inputs,
        "outputs": step.outputs,
        "metadata": step.metadata,
        "parameters": step.parameters,
        "cache_key": step.cache_key,
        "upstream_steps": step.upstream_steps,
        "error": step.error,
    }


def describe_item(found: Any) -> dict[str, Any]:
    """The JSON shape of ``run describe``: a run with its metadata and steps."""
    item = run_item(found)
    item["metadata"] = found.metadata
    item["steps"] = [step_item(s) for s in found.steps]
    return item


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in counts.items())


def _short(identifier: str) -> str:
    return identifier[:8]


def _stack_filter(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``run list --stack``: read that stack's metadata store, and only its runs."""
    if value is not None:
        from .context import app

        app().runs_stack = value
        app().runs_stack_is_filter = True
    return value


@click.group()
def run() -> None:
    """List, describe and delete pipeline runs.

    Example: metaledger run list --status failed
    """


@run.command("list")
@click.option("--pipeline", help="Only runs of this pipeline.")
@click.option("--status", type=click.Choice(_RUN_STATUSES), help="Only runs in this status.")
@click.option(
    "--stack",
    callback=_stack_filter,
    help="Only runs on this stack (name or id), read from its metadata store.",
)
@click.option("--since", help="Started at or after: ISO-8601 time or an age (2h, 7d).")
@click.option("--until", help="Started at or before: ISO-8601 time or an age.")
@limit_options(50, "run")
@wide_option
@as_of_option
@show_secrets_option
@output_options(nl=True)
def list_(
    pipeline: str | None,
    status: str | None,
    stack: str | None,
    since: str | None,
    until: str | None,
    limit: int | None,
    wide: bool,
    as_of: str | None,
    show_secrets: bool,
    fmt: Format,
) -> None:
    """List pipeline runs, newest first.

    Runs are read from the active stack's metadata store (or --stack's): the
    home store itself, or the store the stack's metadata store names.

    At most --limit runs (50 unless given; --all or --limit 0 for every one); a
    cut listing says "50 of 6,250 runs" under the table, or on stderr with --json.
    The table fits the terminal: narrow ones lose STACK, PIPELINE and STEPS
    first and shorten long run names; --wide shows everything.

    Example: metaledger run list --pipeline training_pipeline --since 7d --json
    """
    since_at = parse_time(since) if since else None
    until_at = parse_time(until) if until else None

    filters: dict[str, Any] = {
        "pipeline": pipeline,
        "status": status,
        "stack": stack,
        "since": since_at,
        "until": until_at,
    }

    runs, total = run_listing(
        lambda views: views.query.runs(**filters, limit=limit),
        lambda views: views.query.count_runs(**filters),
        limit,
        as_of,
        runs=True,
    )
    items = mask_secrets([run_item(r) for r in runs], show=show_secrets)
    cut = ListingCut.of(len(runs), total, "run")

    def table() -> None:
        if not runs:
            say("No runs match.")
            return
        print_table(
            (
                Column("RUN NAME", fit="middle", min_width=20),
                Column("PIPELINE", drop=2),
                Column("STATUS", fit="keep"),
                Column("STACK", drop=3),
                Column("STARTED", fit="keep", drop=1),
                Column("DURATION", fit="keep"),
                Column("STEPS", drop=4),
                Column("RUN ID", fit="keep"),
            ),
            [
                (
                    r.run_name,
                    r.pipeline_name,
                    r.status,
                    r.stack or "",
                    format_time(r.started_at),
                    format_duration(r.duration_s),
                    _counts(r.step_counts),
                    _short(r.run_id),
                )
                for r in runs
            ],
            wide=wide,
        )

    emit(items, fmt, table)
    report_cut(cut, fmt)


@run.command("describe")
@click.argument("run_ref", metavar="RUN")
@stack_option
@wide_option
@as_of_option
@show_secrets_option
@output_options()
def describe(
    run_ref: str, as_of: str | None, fmt: Format, wide: bool = False, show_secrets: bool = False
) -> None:
    """Describe a run (by id, run name, or id prefix), then its steps.

    An id prefix needs at least 4 characters and must match one run only; a
    reference that could mean several runs (a run named like another run's id
    prefix...) is refused, listing them.

    The steps table fits the terminal: narrow ones lose STARTED and INPUTS
    first and shorten long values (a failed step's error is in full in --json);
    --wide shows everything.

    Example: metaledger run describe training_pipeline-2026_11_28-08_00_00_000000
    """

    async def read(views: Any) -> tuple[Any, dict[str, Any] | None]:
        found = await views.query.run(run_ref)
        described = None
        if found.stack_id is not None:
            described = await views.query.described_stack(found.stack_id)
        return found, described

    found, described = run_on_views(read, as_of, runs=True)
    # Config, parameters, metadata and errors can hold credentials: mask them all.
    item = mask_secrets(describe_item(found), show=show_secrets)
    steps = item["steps"]
    if described is not None:
        # The run was recorded away from its stack's home store: its stack as described.
        item["stack_description"] = described

    def table() -> None:
        import msgspec

        rows: list[tuple[str, Any]] = [
            ("RUN NAME", found.run_name),
            ("RUN ID", found.run_id),
            ("PIPELINE", found.pipeline_name),
            ("STATUS", found.status),
            ("STACK", found.stack or ""),
            ("STARTED", format_time(found.started_at)),
            ("FINISHED", format_time(found.finished_at)),
            ("DURATION", format_duration(found.duration_s)),
            ("STEPS", _counts(found.step_counts)),
        ]
        if item["error"]:
            rows.append(("ERROR", item["error"]))
        if item["config"]:
            rows.append(("CONFIG", msgspec.json.encode(item["config"]).decode()))
        if item["tags"]:
            rows.append(("TAGS", ", ".join(item["tags"])))
        if described is not None:
            rows.append(("STACK HOME", described["home"]))
            rows += [
                (f"STACK {c['type'].upper()}", f"{c['name']} ({c['flavor']})")
                for c in described["components"]
            ]
        rows += [(f"METADATA {k}", v) for k, v in item["metadata"].items()]
        print_properties(rows, title=f"Run '{found.run_name}'", headers=("RUN_PROPERTY", "VALUE"))
        print_table(
            (
                Column("STEP", min_width=12),
                Column("STATUS", min_width=9, max_width=24),
                Column("STARTED", fit="keep", drop=3),
                Column("DURATION", fit="keep"),
                # Inputs are the outputs of earlier steps: they go before metadata.
                Column("INPUTS", drop=2),
                Column("OUTPUTS"),
                Column("METADATA", drop=1),
            ),
            [
                (
                    s.name,
                    s.status + (f": {shown['error']}" if s.error else ""),
                    format_time(s.started_at),
                    format_duration(s.duration_s),
                    ", ".join(f"{k}={_short(v)}" for k, v in s.inputs.items()),
                    ", ".join(f"{k}={_short(v)}" for k, v in s.outputs.items()),
                    ", ".join(f"{k}={v}" for k, v in shown["metadata"].items()),
                )
                for s, shown in zip(found.steps, steps, strict=True)
            ],
            title="Steps",
            wide=wide,
        )

    emit(item, fmt, table)


@run.command("delete")
@click.argument("run_ref", metavar="RUN")
@stack_option
@click.option("--reason", default="", help="Why, recorded in the tombstone event.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@output_options()
def delete(run_ref: str, reason: str, yes: bool, fmt: Format) -> None:
    """Delete a run: a tombstone event; the log keeps every event, the views forget it.

    RUN is resolved as by `run describe` (an id prefix of 4+ characters,
    never an ambiguous one). Deleting a run frees its run name.

    Example: metaledger run delete 3f2a9c1e --reason "test run" --yes
    """
    import uuid

    async def resolve() -> Any:
        async with open_runs_store() as store, open_fresh_views(store) as views:
            return await views.query.run(run_ref)

    found = run_async(resolve)
    if not yes and not click.confirm(
        f"Delete run {found.run_name!r} ({found.run_id})? The log keeps its events.",
        default=False,
        err=True,
    ):
        raise CLIError("not deleted")

    run_on_store(lambda store: store.delete_run(uuid.UUID(found.run_id), reason=reason), runs=True)
    result = {
        "action": "deleted",
        "type": "run",
        "name": found.run_name,
        "id": found.run_id,
        "reason": reason,
    }
    emit(result, fmt, lambda: say(f"Deleted run `{found.run_name}` ({found.run_id})."))
