"""``metaledger store describe``: where the store is and what it holds."""

from __future__ import annotations

from typing import Any

import click

from .context import open_fresh_views, open_store_for, run_async
from .output import Format, emit, format_time, output_options, print_properties, print_table

__all__ = ["store"]


@click.group()
def store() -> None:
    """Describe the store.

    Example: metaledger store describe
    """


@store.command("describe")
@output_options()
def describe(fmt: Format) -> None:
    """Show the backend, URI, schema version, event count, head, size on disk, and per
    projection its position, lag and version.

    Example: metaledger store describe --json
    """

    async def body() -> dict[str, Any]:
        async with open_store_for() as opened:
            info = await opened.info()
            last = await opened.get_position(info["head_position"])
            async with open_fresh_views(opened) as views:
                status = await views.status()
        info["last_event_at"] = last.recorded_at if last is not None else None
        info["projections"] = [
            {
                "name": s.name,
                "position": s.position,
                "lag": s.lag,
                "version": s.version,
                "state": s.state,
            }
            for s in status
        ]
        return info

    info = run_async(body)

    def table() -> None:
        print_properties(
            [
                ("BACKEND", info["backend"]),
                ("URI", info["uri"]),
                ("SCHEMA VERSION", info["schema_version"]),
                ("STORE ID", info.get("store_id") or ""),
                ("EVENTS", f"{info['events']:,}"),
                ("HEAD POSITION", info["head_position"]),
                ("LAST EVENT AT", format_time(info["last_event_at"])),
                ("SIZE ON DISK", _size(info.get("size_bytes"))),
            ],
            title="Store",
            headers=("STORE_PROPERTY", "VALUE"),
        )
        print_table(
            ("PROJECTION", "POSITION", "LAG", "VERSION", "STATE"),
            [
                (p["name"], p["position"], p["lag"], p["version"], p["state"])
                for p in info["projections"]
            ],
        )

    emit(info, fmt, table)


def _size(size: int | None) -> str:
    if size is None:
        return "unknown"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
