"""``metaledger openlineage import``: store the OpenLineage events of a file, one result each.

The work is the library's (:func:`eventstore.openlineage.ingest`); this module
reads the file, prints one line per event that was not stored as new (invalid
with its reason, or a duplicate), a summary, and maps the outcome to an exit
code: 0 when every event was stored or already stored, 1 when any was invalid
(the valid ones are stored all the same).

``--json``: ``stored``, ``duplicate``, ``invalid`` (counts) and ``results``, one
object per line of the file: ``line``, ``status`` (stored, duplicate, invalid),
``reason`` (invalid), ``kind``, ``run_id``, ``event_type``, ``position``, ``key``.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any

import click

from .context import open_store_for, run_async
from .errors import CLIError
from .output import Format, emit, output_options, plural, say

if TYPE_CHECKING:
    from eventstore.openlineage import IngestResult

__all__ = ["openlineage"]


@click.group("openlineage")
def openlineage() -> None:
    """Ingest OpenLineage events (what Airflow, Spark, dbt... emit).

    `metaledger serve` takes them over HTTP (POST /api/v1/lineage); `openlineage
    import` takes a file the clients' FileTransport wrote.

    Example: metaledger openlineage import events.jsonl
    """


@openlineage.command("import")
@click.argument("source", metavar="FILE|-", type=click.File("rb"))
@output_options()
def import_events(source: IO[bytes], fmt: Format) -> None:
    """Store the OpenLineage events of FILE, one event per line.

    FILE is what the OpenLineage clients' FileTransport writes (one JSON event
    per line; blank lines are skipped). Each event is validated against the
    OpenLineage 2-0-x schema (whatever version its schemaURL names), then
    stored whole, once: an event already stored (the same content, however
    formatted) is a duplicate and changes nothing, so importing a file again
    is a no-op. Invalid events are reported as "line N: reason" and not
    stored; the valid ones are stored all the same, and the exit code is 1.
    The runs, steps and datasets appear in `run list`, `run describe`,
    `pipeline list` and `artifact lineage`.

    Example: metaledger openlineage import /var/log/openlineage/events.jsonl
    """
    from eventstore.openlineage import BodyError, ingest

    content = source.read()
    given = getattr(source, "name", "-")
    name = "<stdin>" if given in ("<stdin>", "-") else str(given)
    if not content.strip():
        emit(
            {"stored": 0, "duplicate": 0, "invalid": 0, "results": []},
            fmt,
            lambda: say(f"{name} holds no events; nothing stored."),
        )
        return

    async def body() -> IngestResult:
        async with open_store_for() as store:
            try:
                return await ingest(store, content, lines=True)
            except BodyError as exc:
                raise CLIError(f"{name}: {exc}") from None

    result = run_async(body)
    results: list[dict[str, Any]] = []
    for outcome in result.outcomes:
        fields = outcome.as_json()
        fields.pop("index")
        results.append({"line": outcome.index + 1, **fields})
    counts = {s: result.count(s) for s in ("stored", "duplicate", "invalid")}

    def text() -> None:
        for item in results:
            if item["status"] == "invalid":
                say(f"{name}: line {item['line']}: {item['reason']}", err=True)
        message = f"Stored {plural(counts['stored'], 'event')}"
        if counts["duplicate"]:
            message += (
                f"; {plural(counts['duplicate'], 'duplicate')} already stored, left as they are"
            )
        if counts["invalid"]:
            message += f"; {plural(counts['invalid'], 'invalid event')} not stored"
        say(message + ".")

    emit({**counts, "results": results}, fmt, text)
    if counts["invalid"]:
        rest = (
            "the valid ones were stored"
            if counts["stored"] or counts["duplicate"]
            else "nothing stored"
        )
        raise CLIError(f"{name}: {plural(counts['invalid'], 'invalid event')}; {rest}")
