"""``metaledger artifact``: list and describe artifacts, and draw their lineage."""

from __future__ import annotations

from typing import Any, Literal

import click

from .context import as_of_option, open_fresh_views, open_store_for, run_async
from .output import (
    Format,
    emit,
    emit_json,
    format_time,
    output_options,
    print_properties,
    print_table,
)

__all__ = ["artifact", "artifact_item", "lineage_dot", "lineage_tree"]


def artifact_item(found: Any) -> dict[str, Any]:
    """The stable JSON shape of an artifact."""
    return {
        "artifact_id": found.artifact_id,
        "name": found.name,
        "version": found.version,
        "uri": found.uri,
        "artifact_type": found.artifact_type,
        "data_type": found.data_type,
        "materializer": found.materializer,
        "content_hash": found.content_hash,
        "size_bytes": found.size_bytes,
        "metadata": found.metadata,
        "run_id": found.run_id,
        "run_name": found.run_name,
        "pipeline_name": found.pipeline_name,
        "step_run_id": found.step_run_id,
        "step_name": found.step_name,
        "output_name": found.output_name,
        "created_at": found.created_at,
    }


def _size(size: int | None) -> str:
    if size is None:
        return ""
    return f"{size:,} B" if size < 10_000 else f"{size / 1024:,.1f} KiB"


@click.group()
def artifact() -> None:
    """List and describe artifacts and their lineage.

    Example: metaledger artifact list --type ModelArtifact
    """


@artifact.command("list")
@click.option("--type", "artifact_type", help="Only this artifact type (e.g. ModelArtifact).")
@click.option("--run", "run_ref", metavar="RUN", help="Only artifacts produced by this run.")
@click.option("--name", help="Only versions of this artifact name.")
@click.option("--limit", type=click.IntRange(min=0), default=100, show_default=True)
@output_options(nl=True)
def list_(
    artifact_type: str | None, run_ref: str | None, name: str | None, limit: int, fmt: Format
) -> None:
    """List artifacts, newest first.

    Example: metaledger artifact list --run training_pipeline-2026_11_28-08_00_00_000000
    """

    async def body() -> list[Any]:
        async with open_store_for() as store, open_fresh_views(store) as views:
            return await views.query.artifacts(
                artifact_type=artifact_type, run=run_ref, name=name, limit=limit
            )

    found = run_async(body)
    items = [artifact_item(a) for a in found]

    def table() -> None:
        if not found:
            click.echo("No artifacts match.")
            return
        print_table(
            ("NAME", "VERSION", "TYPE", "PRODUCED BY", "CREATED", "SIZE", "ARTIFACT ID"),
            [
                (
                    a.name,
                    a.version,
                    a.artifact_type,
                    f"{a.run_name} / {a.step_name}",
                    format_time(a.created_at),
                    _size(a.size_bytes),
                    a.artifact_id[:8],
                )
                for a in found
            ],
        )

    emit(items, fmt, table)


@artifact.command("describe")
@click.argument("ref", metavar="ID")
@as_of_option
@output_options()
def describe(ref: str, as_of: str | None, fmt: Format) -> None:
    """Describe an artifact: by id, NAME:VERSION, NAME (latest) or id prefix.

    An id prefix needs at least 4 characters and must match one artifact only;
    a reference that could mean several artifacts is refused, listing them.

    Example: metaledger artifact describe training_pipeline.train.model:1
    """

    async def body() -> Any:
        async with open_store_for() as store, open_fresh_views(store, as_of) as views:
            return await views.query.artifact(ref)

    found = run_async(body)
    item = artifact_item(found)
    item["consumers"] = [
        {
            "step_run_id": c.step_run_id,
            "step_name": c.step_name,
            "run_id": c.run_id,
            "run_name": c.run_name,
            "input_name": c.input_name,
        }
        for c in found.consumers
    ]

    def table() -> None:
        rows: list[tuple[str, Any]] = [
            ("NAME", found.name),
            ("VERSION", found.version),
            ("ARTIFACT ID", found.artifact_id),
            ("TYPE", found.artifact_type),
            ("URI", found.uri),
            ("DATA TYPE", found.data_type or ""),
            ("MATERIALIZER", found.materializer or ""),
            ("CONTENT HASH", found.content_hash or ""),
            ("SIZE", _size(found.size_bytes)),
            ("PRODUCED BY", f"{found.run_name} / {found.step_name} ({found.output_name})"),
            ("CREATED", format_time(found.created_at)),
        ]
        rows += [(f"METADATA {k}", v) for k, v in found.metadata.items()]
        print_properties(
            rows, title=f"Artifact '{found.name}' v{found.version}", headers=("PROPERTY", "VALUE")
        )
        if found.consumers:
            print_table(
                ("CONSUMED BY RUN", "STEP", "AS INPUT"),
                [(c.run_name, c.step_name, c.input_name) for c in found.consumers],
                title="Consumers",
            )

    emit(item, fmt, table)


def lineage_tree(graph: Any) -> Any:
    """A rich Tree of a lineage graph: upstream and/or downstream of the roots."""
    from rich.tree import Tree

    nodes = {n.id: n for n in graph.nodes}
    upstream: dict[str, list[Any]] = {}
    downstream: dict[str, list[Any]] = {}
    for edge in graph.edges:
        upstream.setdefault(edge.target, []).append(edge)
        downstream.setdefault(edge.source, []).append(edge)

    def label(node_id: str) -> str:
        node = nodes.get(node_id)
        if node is None:
            return f"(deleted) {node_id[:8]}"
        if node.kind == "artifact":
            return f"[bold]{node.label}[/bold] [dim]{node.id[:8]}[/dim]"
        return f"step {node.label} [dim]({node.run_name})[/dim]"

    def grow(tree: Any, node_id: str, up: bool, seen: set[str]) -> None:
        for edge in (upstream if up else downstream).get(node_id, []):
            other = edge.source if up else edge.target
            verb = (
                ("produced by" if edge.kind == "produced" else "consumed as")
                if up
                else ("produced" if edge.kind == "produced" else "consumed by")
            )
            branch = tree.add(
                f"{verb} {edge.name!r}: {label(other)}"
                if edge.kind == "consumed"
                else f"{verb}: {label(other)}"
            )
            if other not in seen:
                grow(branch, other, up, seen | {other})

    root = Tree(f"lineage ({graph.direction}, depth {graph.depth})")
    for root_id in graph.roots:
        top = root.add(label(root_id))
        if graph.direction in ("upstream", "both"):
            grow(top.add("⬆ upstream"), root_id, True, {root_id})
        if graph.direction in ("downstream", "both"):
            grow(top.add("⬇ downstream"), root_id, False, {root_id})
    if graph.truncated:
        root.add("… more beyond --depth")
    return root


def lineage_dot(graph: Any) -> str:
    """The lineage graph in Graphviz DOT."""

    def quote(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["digraph lineage {", "  rankdir=LR;"]
    for node in graph.nodes:
        shape = "box" if node.kind == "step" else "ellipse"
        lines.append(f"  {quote(node.id)} [label={quote(node.label)}, shape={shape}];")
    for edge in graph.edges:
        lines.append(f"  {quote(edge.source)} -> {quote(edge.target)} [label={quote(edge.name)}];")
    lines.append("}")
    return "\n".join(lines)


@artifact.command("lineage")
@click.argument("ref", metavar="ID")
@click.option("--upstream", "direction", flag_value="upstream", help="Only where it came from.")
@click.option("--downstream", "direction", flag_value="downstream", help="Only what used it.")
@click.option(
    "--depth",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="How many step-hops to follow each way.",
)
@click.option("--run", "is_run", is_flag=True, help="ID names a run: the lineage of all its steps.")
@click.option(
    "--format", "out", type=click.Choice(["tree", "json", "dot"]), default="tree", show_default=True
)
@click.option("--json", "json_flag", is_flag=True, help="The same as --format json.")
@as_of_option
def lineage(
    ref: str,
    direction: Literal["upstream", "downstream"] | None,
    depth: int,
    is_run: bool,
    out: str,
    json_flag: bool,
    as_of: str | None,
) -> None:
    """Show where an artifact came from and what used it, to a depth.

    Example: metaledger artifact lineage training_pipeline.train.model --upstream --depth 5
    """
    from .context import app

    async def body() -> Any:
        async with open_store_for() as store, open_fresh_views(store, as_of) as views:
            return await views.query.lineage(
                artifact=None if is_run else ref,
                run=ref if is_run else None,
                direction=direction or "both",
                depth=depth,
            )

    graph = run_async(body)
    if out == "json" or json_flag or app().json_output:
        emit_json(graph)
    elif out == "dot":
        click.echo(lineage_dot(graph))
    else:
        from .output import _console

        _console().print(lineage_tree(graph))
