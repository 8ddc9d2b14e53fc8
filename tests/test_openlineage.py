"""OpenLineage ingest as a library: parsing, validation, idempotency, the raw event as the fact."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema.exceptions import best_match

from eventstore import OpenLineageReceived, export, import_, open_store
from eventstore.openlineage import (
    BodyError,
    InvalidOpenLineageEvent,
    OpenLineageEvent,
    canonical_key,
    event_kind,
    ingest,
    parse_body,
    parse_event_time,
)
from eventstore.openlineage.schema import KINDS, _validator, conforms
from projections import open_views, views_as_of

from .openlineage_events import dag_run_events, ndjson, run_event

DATA = Path(__file__).parent / "data" / "openlineage"


class TestEventTime:
    """eventTime in every RFC 3339 form real integrations write."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2026-05-01T12:00:00Z", 1777636800_000000),
            ("2026-05-01T12:00:00.1Z", 1777636800_100000),
            ("2026-05-01T12:00:00.123456789Z", 1777636800_123456),
            ("2026-05-01T22:00:00.5+10:00", 1777636800_500000),
            ("2026-05-01T07:30:00.000-04:30", 1777636800_000000),
            ("2026-05-01t12:00:00z", 1777636800_000000),
            ("2026-05-01T12:00:00+0000", 1777636800_000000),
            ("2026-05-01T12:00:00.25", 1777636800_250000),
        ],
    )
    def test_forms(self, text: str, expected: int) -> None:
        """Z or offsets, 0 to 9 fractional digits: one instant in microseconds."""
        assert expected == parse_event_time(text)

    @pytest.mark.parametrize("text", ["2026-05-01", "yesterday", "2026-05-01T12:00", 5])
    def test_refused(self, text: object) -> None:
        """A date alone, a time without seconds, or no string at all is not an eventTime."""
        with pytest.raises(ValueError, match="RFC 3339"):
            parse_event_time(text)


class TestParsing:
    """Bodies, kinds, keys and reasons."""

    def test_kinds_from_schema_url(self) -> None:
        """The schemaURL's last part decides the kind; RunEvent when it names none."""
        base = "https://openlineage.io/spec/1-0-5/OpenLineage.json#/definitions/"
        assert "DatasetEvent" == event_kind({"schemaURL": base + "DatasetEvent"})
        assert "JobEvent" == event_kind({"schemaURL": base + "JobEvent"})
        assert "RunEvent" == event_kind({"schemaURL": base + "RunEvent"})
        assert "RunEvent" == event_kind({"schemaURL": "https://example.com/custom"})

    def test_key_ignores_formatting(self) -> None:
        """The canonical key is the same however the event is formatted."""
        event = run_event("START", "0d9a4b2e-4f0c-4d55-8b1e-2f6a7c3d9e10", "job", 0)
        shuffled = dict(reversed(list(event.items())))
        assert canonical_key(event) == canonical_key(shuffled)
        one = parse_body(json.dumps(event).encode())[0]
        two = parse_body(json.dumps(shuffled, indent=2).encode())[0]
        assert isinstance(one, OpenLineageEvent)
        assert isinstance(two, OpenLineageEvent)
        assert one.key == two.key
        assert one.raw != two.raw

    def test_object_array_and_ndjson(self) -> None:
        """One object, an array, or one object per line: each event keeps its own bytes."""
        events = dag_run_events()["events"][:3]
        texts = [json.dumps(e).encode() for e in events]
        assert [texts[0]] == [e.raw for e in parse_body(texts[0])]  # type: ignore[union-attr]
        array = b"[" + b" , ".join(texts) + b"]"
        assert texts == [e.raw for e in parse_body(array)]  # type: ignore[union-attr]
        assert texts == [e.raw for e in parse_body(ndjson(events))]  # type: ignore[union-attr]
        pretty = json.dumps(events[0], indent=2).encode()
        assert [pretty] == [e.raw for e in parse_body(pretty)]  # type: ignore[union-attr]

    @pytest.mark.parametrize("body", [b"", b"  \n", b"[{]"])
    def test_bodies_refused_whole(self, body: bytes) -> None:
        """An empty body or a broken array cannot be split into events."""
        with pytest.raises(BodyError):
            parse_body(body)

    @pytest.mark.parametrize(
        ("change", "reason"),
        [
            (lambda e: e.pop("eventTime"), "'eventTime' is a required property"),
            (lambda e: e["job"].pop("name"), "job: 'name' is a required property"),
            (lambda e: e["run"].update(runId=42), "run.runId: 42 is not of type 'string'"),
            (lambda e: e.update(eventType="DONE"), "eventType: 'DONE' is not one of"),
            (lambda e: e.update(eventTime="noon"), "not an RFC 3339 date-time"),
            (lambda e: e.update(inputs={}), "inputs: {} is not of type 'array'"),
        ],
    )
    def test_invalid_events_name_the_problem(self, change, reason: str) -> None:  # type: ignore[no-untyped-def]
        """Missing fields, wrong types, bad enums: refused with the place and the rule."""
        event = run_event("START", "0d9a4b2e-4f0c-4d55-8b1e-2f6a7c3d9e10", "job", 0)
        change(event)
        (parsed,) = parse_body(json.dumps(event).encode())
        assert isinstance(parsed, InvalidOpenLineageEvent)
        assert reason in parsed.reason

    def test_malformed_line_among_good_ones(self) -> None:
        """NDJSON with a broken line: that line is invalid, the others parse."""
        events = dag_run_events()["events"][:2]
        body = json.dumps(events[0]).encode() + b"\n{not json}\n" + json.dumps(events[1]).encode()
        parsed = parse_body(body)
        assert [type(p).__name__ for p in parsed] == [
            "OpenLineageEvent",
            "InvalidOpenLineageEvent",
            "OpenLineageEvent",
        ]
        assert "malformed JSON" in parsed[1].reason  # type: ignore[union-attr]

    def test_old_schema_urls_and_custom_facets(self) -> None:
        """A 1-0-1 schemaURL and an unknown custom facet are accepted, the facet kept whole."""
        event = run_event("START", "0d9a4b2e-4f0c-4d55-8b1e-2f6a7c3d9e10", "job", 0)
        event["schemaURL"] = (
            "https://openlineage.io/spec/1-0-1/OpenLineage.json#/definitions/RunEvent"
        )
        event["run"]["facets"]["acme_custom"] = {
            "_producer": "acme",
            "_schemaURL": "https://acme.example/schema.json",
            "nested": {"deep": [1, 2, {"x": None}]},
        }
        (parsed,) = parse_body(json.dumps(event).encode())
        assert isinstance(parsed, OpenLineageEvent)
        assert parsed.document["run"]["facets"]["acme_custom"]["nested"]["deep"][2] == {"x": None}


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2)
    ),
    max_leaves=4,
)
_CAPTURED = [
    json.loads((DATA / n).read_text()) for n in sorted(p.name for p in DATA.glob("*.json"))
]


def _paths(node: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [here]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*here, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*here, index))
    return found


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_the_fast_check_agrees_with_the_schema(data: st.DataObject) -> None:
    """``conforms`` (the fast path) and jsonschema give the same verdict on captured events
    and on mutations of them: a value replaced, a key removed or added."""
    document = copy.deepcopy(data.draw(st.sampled_from([*_CAPTURED, *dag_run_events()["events"]])))
    for _ in range(data.draw(st.integers(0, 3))):
        path = data.draw(st.sampled_from(_paths(document)))
        if not path:
            continue
        *parents, last = path
        node = document
        for step in parents:
            node = node[step]
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete" and isinstance(node, dict):
            del node[last]
        elif action == "add" and isinstance(node, dict):
            node[data.draw(st.sampled_from(["run", "job", "_deleted", "eventType", "x"]))] = (
                data.draw(_JSON)
            )
        else:
            node[last] = data.draw(_JSON)
    for kind in KINDS:
        reference = best_match(_validator(kind).iter_errors(document)) is None
        assert reference == conforms(document, kind), (kind, document)


class TestIngest:
    """Storing: whole, once, per-event outcomes, in the log like every event."""

    async def test_batch_with_invalid_and_duplicates(self, tmp_path: Path) -> None:
        """Valid events are stored even beside invalid ones; repeats are duplicates."""
        events = dag_run_events()["events"]
        bad = copy.deepcopy(events[1])
        del bad["run"]
        body = ndjson([events[0], bad, events[1], events[0]])
        async with open_store(tmp_path / "s", default_stack=False) as store:
            result = await ingest(store, body)
            assert ["stored", "invalid", "stored", "duplicate"] == [
                o.status for o in result.outcomes
            ]
            assert result.outcomes[3].position == result.outcomes[0].position
            assert "'run' is a required property" in (result.outcomes[1].reason or "")
            again = await ingest(store, json.dumps(events[0], indent=1).encode())
            assert ["duplicate"] == [o.status for o in again.outcomes]
            assert 2 == await store.head()

    async def test_raw_event_is_recoverable_byte_for_byte(self, tmp_path: Path) -> None:
        """The stored event holds the exact text received, facets and all; export/import keep it."""
        event = run_event("START", "0d9a4b2e-4f0c-4d55-8b1e-2f6a7c3d9e10", "job", 0)
        event["run"]["facets"]["spark_plan"] = {
            "_producer": "spark",
            "_schemaURL": "https://example.com/plan",
            "plan": "x" * (1 << 20),
        }
        text = json.dumps(event, indent=3).encode()
        assert len(text) > 1 << 20
        async with open_store(tmp_path / "s", default_stack=False) as store:
            result = await ingest(store, text)
            assert "stored" == result.outcomes[0].status
            (recorded,) = [e async for e in store.read_all()]
            assert isinstance(recorded.event, OpenLineageReceived)
            assert text == recorded.event.event.encode()
            assert (await store.verify()).ok
            with (tmp_path / "export.jsonl").open("wb") as out:
                await export(store, out)
        async with open_store(tmp_path / "t", default_stack=False) as copy_:
            await import_(copy_, tmp_path / "export.jsonl")
            (recorded,) = [e async for e in copy_.read_all()]
            assert text == recorded.event.event.encode()  # type: ignore[union-attr]

    async def test_views_as_of_and_rebuild(self, tmp_path: Path) -> None:
        """As-of replays and rebuilds derive the same OpenLineage runs from the raw events."""
        d = dag_run_events()
        async with open_store(tmp_path / "s", default_stack=False) as store:
            await ingest(store, ndjson(d["events"][:5]))
            middle = await store.head()
            await ingest(store, ndjson(d["events"][5:]))
            async with views_as_of(store, position=middle) as past:
                run = await past.query.run(d["dag"])
                # Both tasks seen so far ended, the DAG run did not: open, not running.
                assert "open" == run.status
                assert 2 == len(run.steps)
            async with open_views(store) as views:
                before = await views.query.run(d["dag"])
                await views.rebuild()
                after = await views.query.run(d["dag"])
                assert before == after
                assert "completed" == after.status

    async def test_marquez_queries(self, tmp_path: Path) -> None:
        """Namespaces, jobs, runs, datasets, versions, the graph and events, from the views."""
        d = dag_run_events()
        static = [(DATA / "client_dataset_event.json").read_bytes()]
        async with open_store(tmp_path / "s", default_stack=False) as store:
            await ingest(store, ndjson(d["events"]))
            await ingest(store, static[0])
            async with open_views(store) as views:
                q = views.query
                names = [n.name for n in await q.ol_namespaces()]
                assert [
                    "airflow",
                    "openlineage",
                    "postgres://db:5432",
                    "s3://lake",
                    "spark",
                ] == names
                jobs, total = await q.ol_jobs("airflow")
                assert 4 == total
                etl = next(j for j in jobs if j.name == "etl")
                assert ("COMPLETED", None) == (etl.latest_run.state, etl.parent_job)  # type: ignore[union-attr]
                runs, _ = await q.ol_runs("airflow", "etl.transform")
                assert ["COMPLETED", "FAILED"] == [r.state for r in runs]
                assert "OOM" == runs[1].error
                spark = await q.ol_run(d["spark"])
                assert (d["tasks"]["transform_2"], 30_000) == (
                    (await q.ol_run(spark.parent_run_id or "")).id,
                    spark.duration_ms,
                )
                datasets, _ = await q.ol_datasets("s3://lake")
                assert ["clean/orders", "raw/orders"] == [x.name for x in datasets]
                versions, _ = await q.ol_dataset_versions("s3://lake", "clean/orders")
                assert [d["spark"]] == [v.run_id for v in versions]
                graph = await q.ol_lineage("job:airflow:etl.extract", depth=1)
                assert {
                    "job:airflow:etl.extract",
                    "dataset:postgres://db:5432:shop.public.orders",
                    "dataset:s3://lake:raw/orders",
                } == {n.id for n in graph}
                page = await q.ol_events(limit=2, ascending=True)
                assert 13 == page.total_count
                # The DatasetEvent (2021) first, then the DAG run's START.
                assert "dataset" in json.loads(page.events[0])
                assert "etl" == json.loads(page.events[1])["job"]["name"]

    @pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.json")))
    async def test_captured_events(self, tmp_path: Path, name: str) -> None:
        """Events captured from real Airflow, Spark and dbt integrations are accepted."""
        body = (DATA / name).read_bytes()
        async with open_store(tmp_path / "s", default_stack=False) as store:
            result = await ingest(store, body)
            assert all(o.status == "stored" for o in result.outcomes), result.outcomes
            (recorded,) = [e async for e in store.read_all()]
            assert msgspec.json.decode(body) == json.loads(recorded.event.event)  # type: ignore[union-attr]
            async with open_views(store) as views:
                assert (await views.query.runs()) is not None
