"""``metaledger artifact``: list and describe artifacts, and draw their lineage."""

from __future__ import annotations

from typing import Any, Literal

import click

from .context import as_of_option, run_listing, run_on_views
from .input_limits import BoundedInt
from .output import (
    Column,
    Format,
    ListingCut,
    emit,
    emit_json,
    format_time,
    limit_options,
    mask_secrets,
    output_options,
    print_properties,
    print_renderable,
    print_table,
    report_cut,
    say,
    show_secrets_option,
    visible,
    wide_option,
)

__all__ = ["artifact", "artifact_describe_item", "artifact_item", "lineage_dot", "lineage_tree"]


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


def artifact_describe_item(found: Any, *, show_secrets: bool = False) -> dict[str, Any]:
    """The JSON shape of ``artifact describe``: an artifact with its consumers, masked."""
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
    # A URI can carry credentials, metadata secret-looking keys: mask them.
    masked: dict[str, Any] = mask_secrets(item, show=show_secrets)
    return masked


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
@limit_options(100, "artifact")
@wide_option
@show_secrets_option
@output_options(nl=True)
def list_(
    artifact_type: str | None,
    run_ref: str | None,
    name: str | None,
    limit: int | None,
    wide: bool,
    show_secrets: bool,
    fmt: Format,
) -> None:
    """List artifacts, newest first.

    At most --limit artifacts (100 unless given; --all or --limit 0 for every
    one); a cut listing says "100 of 2,400 artifacts" under the table, or on
    stderr with --json. The table fits the terminal; --wide shows everything.

    Example: metaledger artifact list --run training_pipeline-2026_11_28-08_00_00_000000
    """

    filters: dict[str, Any] = {"artifact_type": artifact_type, "run": run_ref, "name": name}

    found, total = run_listing(
        lambda views: views.query.artifacts(**filters, limit=limit),
        lambda views: views.query.count_artifacts(**filters),
        limit,
    )
    items = mask_secrets([artifact_item(a) for a in found], show=show_secrets)
    cut = ListingCut.of(len(found), total, "artifact")

    def table() -> None:
        if not found:
            say("No artifacts match.")
            return
        print_table(
            (
                Column("NAME", fit="middle", min_width=16),
                Column("VERSION", fit="keep"),
                Column("TYPE", drop=1),
                # The name holds the pipeline and step already: the run goes first.
                Column("PRODUCED BY", fit="middle", drop=4, min_width=16),
                Column("CREATED", fit="keep", drop=2),
                Column("SIZE", fit="keep", drop=3),
                Column("ARTIFACT ID", fit="keep"),
            ),
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
            wide=wide,
        )

    emit(items, fmt, table)
    report_cut(cut, fmt)


@artifact.command("describe")
@click.argument("ref", metavar="ID")
@as_of_option
@show_secrets_option
@output_options()
def describe(ref: str, as_of: str | None, show_secrets: bool, fmt: Format) -> None:
    """Describe an artifact: by id, NAME:VERSION, NAME (latest) or id prefix.

    An id prefix needs at least 4 characters and must match one artifact only;
    a reference that could mean several artifacts is refused, listing them.

    Example: metaledger artifact describe training_pipeline.train.model:1
    """

    found = run_on_views(lambda views: views.query.artifact(ref), as_of)
    item = artifact_describe_item(found, show_secrets=show_secrets)

    def table() -> None:
        rows: list[tuple[str, Any]] = [
            ("NAME", found.name),
            ("VERSION", found.version),
            ("ARTIFACT ID", found.artifact_id),
            ("TYPE", found.artifact_type),
            ("URI", item["uri"]),
            ("DATA TYPE", found.data_type or ""),
            ("MATERIALIZER", found.materializer or ""),
            ("CONTENT HASH", found.content_hash or ""),
            ("SIZE", _size(found.size_bytes)),
            ("PRODUCED BY", f"{found.run_name} / {found.step_name} ({found.output_name})"),
            ("CREATED", format_time(found.created_at)),
        ]
        rows += [(f"METADATA {k}", v) for k, v in item["metadata"].items()]
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
    """A rich Tree of a lineage graph: upstream and/or downstream of the roots.

    Each root's branches stop at ``graph.depth`` step-hops (two edges a hop), as
    the graph itself does, and say so where the lineage goes on; each step shows
    its status and short id, so a failed try and its retry are told apart.
    """
    from rich.markup import escape
    from rich.tree import Tree

    nodes = {n.id: n for n in graph.nodes}
    upstream: dict[str, list[Any]] = {}
    downstream: dict[str, list[Any]] = {}
    for edge in graph.edges:
        upstream.setdefault(edge.target, []).append(edge)
        downstream.setdefault(edge.source, []).append(edge)
    max_edges = 2 * graph.depth

    def shown(value: Any) -> str:
        # Names are data: never markup, never terminal control.
        return escape(visible(str(value)))

    def label(node_id: str) -> str:
        node = nodes.get(node_id)
        if node is None:
            return f"(deleted) {shown(node_id[:8])}"
        if node.kind == "artifact":
            return f"[bold]{shown(node.label)}[/bold] [dim]{shown(node.id[:8])}[/dim]"
        status = node.status or "unknown"
        style = "red" if status == "failed" else "green" if status == "completed" else "yellow"
        run = shown(node.run_name or "")
        return (
            f"step {shown(node.label)} · [{style}]{shown(status)}[/{style}] · "
            f"[dim]{shown(node.id[:8])} ({run})[/dim]"
        )

    def grow(tree: Any, node_id: str, up: bool, seen: set[str], hops: int) -> None:
        edges = (upstream if up else downstream).get(node_id, [])
        if edges and hops >= max_edges:
            tree.add("[dim]… more beyond --depth[/dim]")
            return
        for edge in edges:
            other = edge.source if up else edge.target
            verb = (
                ("produced by" if edge.kind == "produced" else "consumed as")
                if up
                else ("produced" if edge.kind == "produced" else "consumed by")
            )
            branch = tree.add(
                f"{verb} {shown(repr(edge.name))}: {label(other)}"
                if edge.kind == "consumed"
                else f"{verb}: {label(other)}"
            )
            if other not in seen:
                grow(branch, other, up, seen | {other}, hops + 1)

    root = Tree(f"lineage ({graph.direction}, depth {graph.depth})")
    for root_id in graph.roots:
        top = root.add(label(root_id))
        if graph.direction in ("upstream", "both"):
            grow(top.add("⬆ upstream"), root_id, True, {root_id}, 0)
        if graph.direction in ("downstream", "both"):
            grow(top.add("⬇ downstream"), root_id, False, {root_id}, 0)
    if graph.truncated:
        root.add("[dim]… the lineage goes on beyond --depth[/dim]")
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
    type=BoundedInt(0),
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

    graph = run_on_views(
        lambda views: views.query.lineage(
            artifact=None if is_run else ref,
            run=ref if is_run else None,
            direction=direction or "both",
            depth=depth,
        ),
        as_of,
    )
    if out == "json" or json_flag or app().json_output:
        emit_json(graph)
    elif out == "dot":
        say(lineage_dot(graph))
    else:
        print_renderable(lineage_tree(graph))
