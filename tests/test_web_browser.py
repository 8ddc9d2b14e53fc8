"""The web page in a real browser: ``metaledger serve`` on a real port, clicked through.

One server over one store for the module (recorded by ``metaledger demo``, twice,
plus a run whose names are hostile markup, then an Airflow-like DAG run with a
Spark child job sent by the real ``openlineage-python`` client to the running
server), one headless Chromium for the
session (tests/browser.py). Every wait is on a condition (Playwright's
auto-waiting ``expect``), never a sleep; every test ends with no console errors.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import httpx
import pytest

from eventstore import open_store

from .browser import browser_page, launched_browser  # noqa: F401 (the fixtures)
from .openlineage_events import dag_run_events
from .server_process import ServerProcess, running_server
from .test_openlineage_server import to_client, until

pytestmark = pytest.mark.slow

HOSTILE_PIPELINE = "<script>alert('pipeline')</script>"
HOSTILE_STEP = "<img src=x onerror=alert('step')>"
HOSTILE_ARTIFACT = '"><b>bold</b>'
SECRET = "hunter2-secret"
#: Two demo runs, the hostile run, the nested one and the OpenLineage DAG run
#: (before the live test adds one).
RECORDED_RUNS = 5
DAG = dag_run_events(seed=5)


def _cli(store: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cli", "--store", store, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


async def _record_more(store_uri: str) -> list[int]:
    """After the CLI's demo run: a secret component, a second demo run, a hostile run.

    Recorded through the library in one process (a CLI call costs a Python start
    each); returns the log's head after the first demo run, the second, the hostile one.
    """
    from cli.init import artifact_root
    from eventstore.demo import run_demo

    async with open_store(store_uri) as store:
        heads = [await store.head()]
        await store.register_component(
            "metadata_store",
            "team_db",
            flavor="postgresql",
            configuration={
                "uri": f"postgresql://alice:{SECRET}@db.example/ml",
                "password": SECRET,
            },
        )
        await run_demo(store, artifact_root=artifact_root(store.location.path))
        heads.append(await store.head())
        async with (
            store.pipeline_run(HOSTILE_PIPELINE) as run,
            run.step(HOSTILE_STEP) as step,
        ):
            await step.produce("out", name=HOSTILE_ARTIFACT, uri="file:///tmp/<i>x</i>")
        # A nested child job, as the OpenLineage mapping records one: its parent in metadata.
        async with store.pipeline_run("airflow_dag") as run, run.step("spark_job") as step:
            await step.log_metadata({"openlineage.parent": "airflow/dag.task run 42"})
        heads.append(await store.head())
    return heads


class Demo:
    """The module's server and what the test setup knows about its store."""

    def __init__(self, server: ServerProcess, store: str, positions: list[int]) -> None:
        self.server = server
        self.url = server.url
        self.store = store
        #: The log's head after each recording step (demo, demo, hostile run, OpenLineage).
        self.positions = positions


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """Two demo runs, a hostile one, a nested one and a secret, served by ``metaledger serve``."""
    store = str(tmp_path_factory.mktemp("web") / "store")
    _cli(store, "demo")  # the store, its default stack and a first run, as a user makes them
    # In a thread of its own: Playwright's sync API keeps an event loop on this one.
    with ThreadPoolExecutor(1) as pool:
        positions = pool.submit(anyio.run, _record_more, store).result(timeout=120)
    with running_server(store) as server:
        _emit_dag_run(server.url)
        head = json.loads(_cli(store, "store", "describe", "--json"))["head_position"]
        yield Demo(server, store, [*positions, head])


def _emit_dag_run(url: str) -> None:
    """The DAG run, sent as Airflow sends it, by the real client; wait for the views."""
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport.http import HttpConfig, HttpTransport

    client = OpenLineageClient(transport=HttpTransport(HttpConfig(url=url)))
    for event in DAG["events"]:
        client.emit(to_client(event))

    def caught_up() -> bool:
        answer = httpx.get(f"{url}/api/metaledger/v1/runs/{DAG['dag']}", timeout=30)
        run = answer.json() if answer.status_code == 200 else {}
        return run.get("status") == "completed" and len(run.get("steps", [])) == 5

    until(caught_up)


def _no_console_errors(opened: Any) -> None:
    assert opened.console_errors == []


def test_runs_to_run_to_artifact_to_lineage_to_a_node_and_back(demo: Demo, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(demo.url + "/")
    rows = page.locator("table.runs tbody tr")
    expect(rows).to_have_count(RECORDED_RUNS)
    run_link = page.locator("table.runs tbody tr", has_text="training_pipeline").first.locator("a")
    run_name = run_link.inner_text()
    run_link.click()
    expect(page.locator("h1")).to_contain_text(run_name)
    expect(page.locator(".timeline li")).to_have_count(7)  # the demo retries its train step
    expect(page.locator(".timeline", has_text="try 2")).to_be_visible()
    expect(page.locator("#audit + .table-wrap tbody tr").first).to_be_visible()

    page.locator("table.artifacts a", has_text="raw").first.click()
    expect(page.locator("h1")).to_contain_text("raw")
    artifact_id = page.locator("dt:text-is('Artifact id') + dd").inner_text().strip()

    page.locator("#lineage-link").click()
    expect(page.locator("svg.graph")).to_be_visible()
    graph = httpx.get(
        f"{demo.url}/api/metaledger/v1/lineage", params={"artifact": artifact_id}
    ).json()
    pairs = {(e["source"], e["target"]) for e in graph["edges"]}
    expect(page.locator("svg.graph .node")).to_have_count(len(graph["nodes"]))
    expect(page.locator("svg.graph .edge")).to_have_count(len(pairs))
    drawn = set(page.locator("svg.graph .node").evaluate_all("ns => ns.map(n => n.dataset.nodeId)"))
    assert drawn == {n["id"] for n in graph["nodes"]}
    lineage_url = page.url

    step = next(n for n in graph["nodes"] if n["kind"] == "step")
    page.locator(f'svg.graph a.node[data-node-id="{step["id"]}"]').click()
    expect(page).to_have_url(re.compile(r"/runs/"))
    expect(page.locator("h1")).to_contain_text(step["run_name"])
    page.go_back()
    expect(page).to_have_url(lineage_url)
    expect(page.locator("svg.graph .node")).to_have_count(len(graph["nodes"]))
    _no_console_errors(page)


def test_the_depth_selector_and_keyboard_zoom_change_the_graph(demo: Demo, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(demo.url + "/artifacts")
    page.locator("a", has_text="metrics").first.click()
    page.locator("#lineage-link").click()
    deep = page.locator("svg.graph .node").count()
    page.select_option("#depth", "1")
    page.locator("button", has_text="Show").click()
    expect(page).to_have_url(re.compile(r"depth=1"))
    assert page.locator("svg.graph .node").count() < deep
    # A graph that fits at a readable scale opens fitted: the whole of it in view.
    expect(page.locator("[data-graph-hint]")).to_have_text("")
    box = page.locator("svg.graph").get_attribute("viewBox")
    x, y, w, h = (float(v) for v in (box or "").split())
    graph = page.locator("svg.graph")
    width, height = (float(graph.get_attribute(a) or 0) for a in ("data-width", "data-height"))
    assert (x <= 0, y <= 0) == (True, True)
    assert (x + w >= width, y + h >= height) == (True, True)
    page.locator("[data-graph-frame]").focus()
    page.keyboard.press("+")
    expect(page.locator("svg.graph")).not_to_have_attribute("viewBox", box or "")
    page.keyboard.press("0")
    expect(page.locator("svg.graph")).to_have_attribute("viewBox", box or "")
    _no_console_errors(page)


def test_the_keyboard_reaches_the_content_and_the_graph_nodes(demo: Demo, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(demo.url + "/artifacts")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.locator("a", has_text="model").first.click()
    page.locator("#lineage-link").click()
    first_node = page.locator("svg.graph a.node").first
    first_node.focus()
    expect(first_node).to_be_focused()
    target = first_node.get_attribute("href")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(re.escape(target or "")))
    _no_console_errors(page)


def test_the_as_of_control_shows_the_past_and_says_so(demo: Demo, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(demo.url + "/")
    expect(page.locator("table.runs tbody tr")).to_have_count(RECORDED_RUNS)
    page.fill("#as-of", str(demo.positions[0]))
    page.locator("form.as-of button").click()
    expect(page).to_have_url(re.compile(rf"as_of={demo.positions[0]}"))
    expect(page.locator("#past-banner")).to_contain_text(str(demo.positions[0]))
    expect(page.locator("table.runs tbody tr")).to_have_count(1)
    # Links keep the past: the run page is the run as it was then.
    page.locator("table.runs tbody a").first.click()
    expect(page).to_have_url(re.compile(rf"as_of={demo.positions[0]}"))
    expect(page.locator("#past-banner")).to_be_visible()
    page.locator("#past-banner a").click()
    expect(page.locator("#past-banner")).to_have_count(0)
    _no_console_errors(page)


def test_a_hostile_name_renders_literally(demo: Demo, page: Any) -> None:
    from playwright.sync_api import expect

    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(demo.url + "/")
    expect(page.locator("table.runs")).to_contain_text(HOSTILE_PIPELINE)
    page.locator("table.runs tbody tr", has_text=HOSTILE_PIPELINE).locator("a").click()
    expect(page.locator("h1")).to_contain_text(HOSTILE_PIPELINE)
    expect(page.locator(".timeline")).to_contain_text(HOSTILE_STEP)
    expect(page.locator("table.artifacts")).to_contain_text(HOSTILE_ARTIFACT)
    page.locator("table.artifacts a").first.click()
    expect(page.locator("h1")).to_contain_text(HOSTILE_ARTIFACT)
    page.locator("#lineage-link").click()
    expect(page.locator("svg.graph title", has_text=HOSTILE_STEP)).to_have_count(1)
    assert page.locator("b", has_text="bold").count() == 0
    assert page.locator("img[src=x]").count() == 0
    assert dialogs == []
    _no_console_errors(page)


def test_the_runs_list_shows_a_new_run_live(demo: Demo, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(demo.url + "/")
    rows = page.locator("table.runs tbody tr")
    before = rows.count()
    expect(page.locator("#live-status")).to_have_text("live")
    _cli(demo.store, "demo")
    expect(rows).to_have_count(before + 1, timeout=30_000)
    expect(page.locator("#runs-count")).to_contain_text(f"{before + 1} runs")
    _no_console_errors(page)


async def _record_one(store_uri: str) -> int:
    """One demo run through the library (which keeps no views); the log's head after it."""
    from cli.init import artifact_root
    from eventstore.demo import run_demo

    async with open_store(store_uri) as store:
        await run_demo(store, artifact_root=artifact_root(store.location.path))
        return await store.head()


def test_the_live_list_waits_for_views_that_lag_the_log(demo: Demo, page: Any) -> None:
    """The stream says an event was stored before the views include it: the page asks
    again until they do, rather than keeping the rows it got first."""
    from playwright.sync_api import expect

    page.goto(demo.url + "/")
    rows = page.locator("table.runs tbody tr")
    before = rows.count()
    expect(page.locator("#live-status")).to_have_text("live")
    started = re.search(r"views_follower_started\s+pid=(\d+)", demo.server.stderr())
    assert started is not None
    views_child = int(started.group(1))
    os.kill(views_child, signal.SIGSTOP)  # the views stand still; the log goes on
    try:
        with ThreadPoolExecutor(1) as pool:
            head = pool.submit(anyio.run, _record_one, demo.store).result(timeout=120)
        # Every event of the new run reached the page, and each refresh got views
        # that do not hold it yet.
        expect(page.locator("#runs")).to_have_attribute("data-seen", str(head), timeout=30_000)
        expect(rows).to_have_count(before)
    finally:
        os.kill(views_child, signal.SIGCONT)
    expect(rows).to_have_count(before + 1, timeout=30_000)
    _no_console_errors(page)


def test_the_runs_list_pages_with_a_cursor(demo: Demo, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(demo.url + "/?limit=2")
    rows = page.locator("table.runs tbody tr")
    expect(rows).to_have_count(2)
    first_page = rows.evaluate_all("rs => rs.map(r => r.dataset.runId)")
    page.locator("a[rel=next]").click()
    expect(page).to_have_url(re.compile(r"cursor="))
    seen = rows.evaluate_all("rs => rs.map(r => r.dataset.runId)")
    assert seen
    assert not set(seen) & set(first_page)
    _no_console_errors(page)


def test_bad_references_and_parameters_are_pages_not_tracebacks(demo: Demo) -> None:
    with httpx.Client(base_url=demo.url) as client:
        missing = client.get("/runs/no-such-run")
        assert missing.status_code == 404
        assert "no-such-run" in missing.text
        assert client.get("/lineage?artifact=x&depth=zero").status_code == 400
        assert client.get("/?cursor=%3Cscript%3E").status_code == 400
        bad_as_of = client.get("/?as_of=<script>")
        assert bad_as_of.status_code == 400
        assert "<script>" not in bad_as_of.text


def test_a_nested_child_job_shows_under_its_parent(demo: Demo, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(demo.url + "/?pipeline=airflow_dag")
    page.locator("table.runs tbody a").first.click()
    child = page.locator(".timeline li.child")
    expect(child).to_have_count(1)
    expect(child).to_contain_text("child of airflow/dag.task run 42")
    _no_console_errors(page)


def test_an_openlineage_run_shows_its_tasks_its_nested_spark_job_and_facets(
    demo: Demo, page: Any
) -> None:
    from playwright.sync_api import expect

    page.goto(demo.url + "/?pipeline=airflow/etl")
    page.locator("table.runs tbody a").first.click()
    expect(page.locator("h1")).to_contain_text(DAG["dag"])
    rows = page.locator(".timeline li")
    expect(rows).to_have_count(5)
    # The tasks are steps of the DAG run (not nested); the Spark job sits under the
    # try of etl.transform that started it, linking to it.
    names = rows.locator("strong").all_inner_texts()
    assert names == [
        "etl.extract",
        "etl.transform",
        "etl.transform",
        "spark_app.execute_insert",
        "etl.load",
    ]
    child = page.locator(".timeline li.child")
    expect(child).to_have_count(1)
    expect(child).to_contain_text("spark_app.execute_insert")
    expect(child).to_contain_text("child of etl.transform (try 2)")
    parent_id = rows.nth(2).get_attribute("id")
    expect(child.locator("a")).to_have_attribute("href", f"#{parent_id}")
    # The facets: the failed try's errorMessage, the DAG run's nominalTime and state.
    expect(rows.nth(1).locator(".step-error")).to_have_text("OOM")
    expect(rows.nth(4)).to_contain_text("stopped")
    expect(page.locator("#nominal-time")).to_have_text(DAG["events"][0]["eventTime"])
    child.locator("a").click()
    expect(page).to_have_url(re.compile(f"#{parent_id}$"))
    _no_console_errors(page)


def test_stacks_mark_the_active_one_and_mask_secrets(demo: Demo) -> None:
    response = httpx.get(f"{demo.url}/stacks")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    text = response.text
    assert SECRET not in text
    assert "postgresql://alice:********@db.example/ml" in text
    assert 'class="active-stack"' in text


def test_the_events_page_filters_verifies_and_shows_raw_events(demo: Demo) -> None:
    with httpx.Client(base_url=demo.url) as client:
        started = client.get("/events", params={"type": "run.started"}).text
        rows = started.count('<tr id="event-')
        assert rows >= 3  # the demo's, the hostile run's (and the live test's)
        assert started.count(">run.started</a>") == rows
        verified = client.get("/events", params={"verify": "1"}).text
        assert 'id="verify-result"' in verified
        assert "Verified:" in verified
        raw = client.get("/events/1")
        assert raw.status_code == 200
        assert "component.registered" in raw.text
        assert client.get(f"/events/{demo.positions[-1] + 100}").status_code == 404
        past = client.get("/events", params={"as_of": str(demo.positions[0])}).text
        assert f'id="event-{demo.positions[0]}"' in past
        assert f'id="event-{demo.positions[0] + 1}"' not in past
