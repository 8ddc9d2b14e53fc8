"""Screenshots of every page for docs/ui.md: ``python -m tests.ui_screenshots docs/ui``.

Records a store with ``metaledger demo`` (three runs), serves it with
``metaledger serve`` on a real port, sends it an Airflow-like DAG run with a
Spark child job through the real ``openlineage-python`` client, and
photographs each page at 1280x800 and 390x844 with the system's Chromium
(as the browser tests drive it).
Not a test: a tool to run by hand after changing the pages, then look.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from .browser import chromium_path
from .openlineage_events import dag_run_events
from .server_process import running_server
from .test_openlineage_server import to_client, until

SIZES = ((1280, 800), (390, 844))
#: Long pages photographed whole, so their audit trails show too.
FULL_PAGES = {"run", "openlineage-run"}
DAG = dag_run_events(seed=1)


def _emit_dag_run(url: str) -> None:
    """The DAG run, sent by the real client, once the server's views hold all of it."""
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport.http import HttpConfig, HttpTransport

    client = OpenLineageClient(transport=HttpTransport(HttpConfig(url=url)))
    for event in DAG["events"]:
        client.emit(to_client(event))

    def caught_up() -> bool:
        answer = httpx.get(f"{url}/api/metaledger/v1/runs/{DAG['dag']}", timeout=30)
        return answer.status_code == 200 and len(answer.json()["steps"]) == 5

    until(caught_up)


def _cli(store: str, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "cli", "--store", store, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout


def main(out: Path) -> None:
    """Photograph the pages into ``out`` (PNG files named PAGE-WIDTH.png)."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "store")
        _cli(store, "demo")
        first_head = json.loads(_cli(store, "store", "describe", "--json"))["head_position"]
        _cli(store, "demo")
        _cli(store, "demo")
        runs = json.loads(_cli(store, "run", "list", "--json"))
        run_id = runs[0]["run_id"]
        artifacts = json.loads(_cli(store, "artifact", "list", "--json", "--run", run_id))
        model = next(a for a in artifacts if a["name"].endswith(".model"))["artifact_id"]
        pages = {
            "runs": "/",
            "run": f"/runs/{run_id}",
            "artifact": f"/artifacts/{model}",
            "lineage": f"/lineage?artifact={model}",
            "run-lineage": f"/lineage?run={run_id}&depth=5",
            "stacks": "/stacks",
            "events": "/events?verify=1",
            "event": "/events/3",
            "time-travel": f"/?as_of={first_head}",
        }
        with running_server(store) as server, sync_playwright() as playwright:
            _emit_dag_run(server.url)
            pages["openlineage-run"] = f"/runs/{DAG['dag']}"
            browser = playwright.chromium.launch(executable_path=chromium_path())
            for width, height in SIZES:
                page = browser.new_page(viewport={"width": width, "height": height})
                for name, path in pages.items():
                    page.goto(server.url + path)
                    if name == "runs":
                        page.wait_for_function(
                            "document.getElementById('live-status').textContent === 'live'"
                        )
                    page.screenshot(
                        path=str(out / f"{name}-{width}.png"), full_page=name in FULL_PAGES
                    )
                page.close()
            browser.close()
    print("\n".join(sorted(p.name for p in out.glob("*.png") if re.search(r"-\d+\.png$", p.name))))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/ui"))
