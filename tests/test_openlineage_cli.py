"""``metaledger openlineage import``, run as a user runs it, and the views it feeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .openlineage_events import dag_run_events, ndjson
from .test_cli_journey import metaledger

pytestmark = pytest.mark.slow


def test_import_a_filetransport_file(tmp_path: Path) -> None:
    """Per-event results, exit 1 for an invalid line (the valid ones stored), a re-import
    is all duplicates, and run list / describe / pipeline list / lineage show the DAG run."""
    store = tmp_path / "store"
    dag = dag_run_events()
    events = tmp_path / "events.jsonl"
    events.write_bytes(ndjson(dag["events"]) + b'{"eventType": "START"}\n\n')
    metaledger(store, "init")
    out = metaledger(store, "openlineage", "import", str(events), "--json", code=1)
    report = json.loads(out[: out.rindex("}") + 1])
    assert (12, 0, 1) == (report["stored"], report["duplicate"], report["invalid"])
    assert 13 == report["results"][-1]["line"]
    assert "'eventTime' is a required property" in report["results"][-1]["reason"]
    assert "1 invalid event; the valid ones were stored" in out

    again = metaledger(store, "openlineage", "import", str(events), code=1)
    assert "Stored 0 events; 12 duplicates already stored" in again

    runs = json.loads(metaledger(store, "run", "list", "--json"))
    (run,) = [r for r in runs if r["pipeline_name"] == "airflow/etl"]
    assert "completed" == run["status"]
    described = json.loads(metaledger(store, "run", "describe", dag["dag"], "--json"))
    assert 5 == len(described["steps"])
    assert "airflow/etl" in metaledger(store, "pipeline", "list")
    lineage = metaledger(store, "artifact", "lineage", "s3://lake/clean/orders", "--json")
    assert "spark_app.execute_insert" in lineage
    assert json.loads(metaledger(store, "verify", "--json"))["ok"]
