"""The HTTP server under load, as ratios to floors: ``python -m benchmarks.bench_server``.

Needs ``wrk`` (``apt-get install wrk``): it drives the server from the same
machine, ``--connections`` connections (50) for ``--seconds`` (5) per figure.
The server runs in a child process exactly as ``metaledger serve`` runs it
(uvicorn, uvloop, httptools, the access log to a discarded stderr), over a
fresh SQLite store (``--store URI`` for another), with extra routes, the floors.

OpenLineage ingest (``POST /api/v1/lineage``), each request new RunEvents of
about 2 KB each (an Airflow task's START: parent, nominal time, SQL and schema
facets; a new ``runId`` per event, so every event is stored):

- floor N: ``GET /healthz``, the same app answering without work;
- floor H: ``POST /bench/lineage-floor``, the same handler
  (:func:`server.openlineage_api.lineage_answer`) doing everything but the
  append: read the body within the limits, check the token scope, split,
  decode, validate, map each event to its stream and encoded
  ``openlineage.received`` event, answer 201 with the outcomes;
- single: ``POST /api/v1/lineage``, one event per request, durable;
- batched: 100 events per request (a JSON array), against the batched Python
  API (``ingest`` of the same 100-event bodies from ``--connections`` tasks in
  one process, no HTTP).

Each ingest figure gets a fresh server and store (views still catching up on
one figure's events would slow the next); floor H is measured twice, before
the single-event figure and after the batched one, and the mean is the floor,
because the shared machine's load moves between them. A diagnostic figure
runs single-event ingest with the live views not kept current (the follower
idle): what the append costs apart from the views' upkeep.

``--write-api`` adds the same three figures for the generic write API
(``POST /api/metaledger/v1/events``, ``run.started`` lines padded to 2 KB,
floor ``POST /bench/floor``: ``parse_lines`` without the append).

Printed: requests (or events) a second, p50 and p99 latency, the ratios
single / floor H and batched HTTP / batched Python, and the load average.
A report, not a test.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["main"]

_PAD = "x" * 1700

_LUA = r"""
local batch = %(batch)d
local counter = 0
local prefix = ""

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%%x+)") or "1", 16) %% 1000003)
  prefix = string.format("%%08x", math.random(0, 2147483647))
end

local function line()
  counter = counter + 1
  local id = string.format("%%s-0000-4000-8000-%%012x", prefix, counter)
  return '{"stream_id":"run-' .. id .. '","type":"run.started","expected_version":"no_stream",'
    .. '"data":{"run_id":"' .. id .. '","pipeline_name":"bench","run_name":"bench-' .. id
    .. '","started_at":"2026-01-01T00:00:00Z","config":{"pad":"%(pad)s"}}}\n'
end

function request()
  local lines = {}
  for i = 1, batch do lines[i] = line() end
  return wrk.format("POST", nil, {["Content-Type"] = "application/x-ndjson"},
                    table.concat(lines))
end
"""


_PRODUCER = "https://github.com/apache/airflow/tree/providers-openlineage/1.0.0"
_FACETS = "https://openlineage.io/spec/facets/1-0-0/"


def _schema_facet(*fields: tuple[str, str]) -> dict[str, object]:
    return {
        "_producer": _PRODUCER,
        "_schemaURL": f"{_FACETS}SchemaDatasetFacet.json",
        "fields": [{"name": n, "type": t} for n, t in fields],
    }


def lineage_event(run_id: str, parent_id: str, shard: int) -> str:
    """An Airflow task's START RunEvent of about 2 KB, as compact JSON.

    The task runs under DAG run ``parent_id`` and reads and writes the tables
    of ``shard``: the benchmark gives each DAG run 10 tasks and spreads the
    tables over 100 shards, as a real deployment spreads its runs (the views'
    upkeep grows with the tasks of one DAG run and the readers of one table).
    """
    warehouse = "postgres://warehouse:5432"
    document = {
        "eventType": "START",
        "eventTime": "2026-05-01T12:00:00.000Z",
        "run": {
            "runId": run_id,
            "facets": {
                "nominalTime": {
                    "_producer": _PRODUCER,
                    "_schemaURL": f"{_FACETS}NominalTimeRunFacet.json",
                    "nominalStartTime": "2026-05-01T12:00:00Z",
                },
                "parent": {
                    "_producer": _PRODUCER,
                    "_schemaURL": f"{_FACETS}ParentRunFacet.json",
                    "run": {"runId": parent_id},
                    "job": {"namespace": "airflow", "name": "bench_dag"},
                },
            },
        },
        "job": {
            "namespace": "airflow",
            "name": "bench_dag.transform",
            "facets": {
                "sql": {
                    "_producer": _PRODUCER,
                    "_schemaURL": f"{_FACETS}SQLJobFacet.json",
                    "query": f"INSERT INTO analytics.daily_orders_{shard} SELECT order_date, "
                    f"count(*) AS orders, sum(amount) AS revenue FROM raw.orders_{shard} "
                    "WHERE status = 'complete' GROUP BY order_date",
                },
            },
        },
        "inputs": [
            {
                "namespace": warehouse,
                "name": f"raw.orders_{shard}",
                "facets": {
                    "schema": _schema_facet(
                        ("id", "BIGINT"),
                        ("customer_id", "BIGINT"),
                        ("order_date", "DATE"),
                        ("amount", "NUMERIC"),
                        ("status", "TEXT"),
                    )
                },
            }
        ],
        "outputs": [
            {
                "namespace": warehouse,
                "name": f"analytics.daily_orders_{shard}",
                "facets": {
                    "schema": _schema_facet(
                        ("order_date", "DATE"), ("orders", "BIGINT"), ("revenue", "NUMERIC")
                    )
                },
            }
        ],
        "producer": _PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
    }
    return json.dumps(document, separators=(",", ":"))


_OL_LUA = r"""
local batch = %(batch)d
local counter = 0
local prefix = ""
local template = %(template)s

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%%x+)") or "1", 16) %% 1000003)
  prefix = string.format("%%08x", math.random(0, 2147483647))
end

local function event()
  counter = counter + 1
  local run = string.format("%%s-0000-4000-8000-%%012x", prefix, counter)
  local parent = string.format("%%s-0000-4000-9000-%%012x", prefix, math.floor(counter / 10))
  local shard = tostring(counter %% 100)
  return (template:gsub("RUNID", run):gsub("PARENTID", parent):gsub("SHARD", shard))
end

function request()
  local body
  if batch == 1 then
    body = event()
  else
    local events = {}
    for i = 1, batch do events[i] = event() end
    body = "[" .. table.concat(events, ",") .. "]"
  end
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
"""


def _lua_string(text: str) -> str:
    """``text`` as a Lua long string literal."""
    return "[==[" + text + "]==]"


def _ol_script(batch: int) -> str:
    template = lineage_event("RUNID", "PARENTID", "SHARD")  # type: ignore[arg-type]
    return _OL_LUA % {"batch": batch, "template": _lua_string(template)}


@dataclass(frozen=True)
class Load:
    """What wrk measured: requests a second and latency percentiles (ms)."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip()).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _wrk(url: str, *, seconds: int, connections: int, script: Path | None) -> Load:
    command = [
        "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "30s",
        "--latency",
        url,
    ]
    if script is not None:
        command[1:1] = ["-s", str(script)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    found = {
        key: re.search(pattern, out, re.MULTILINE)
        for key, pattern in (
            ("rps", r"^Requests/sec:\s+([\d.]+)"),
            ("p50", r"^\s+50%\s+([\d.]+(?:us|ms|s))\s*$"),
            ("p99", r"^\s+99%\s+([\d.]+(?:us|ms|s))\s*$"),
        )
    }
    if not all(found.values()):
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    rps = float(found["rps"].group(1))  # type: ignore[union-attr]
    p50 = _ms(found["p50"].group(1))  # type: ignore[union-attr]
    p99 = _ms(found["p99"].group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: .*", out)
    errors = int(bad.group(1)) if bad else 0
    if socket_errors:
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(0)))
    return Load(rps, p50, p99, errors)


def _catch_up_seconds(url: str, timeout: float = 600.0) -> tuple[float, int]:
    """How long after the load the views reached the head (``/readyz`` 200), and the head."""
    import urllib.error
    import urllib.request

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=30) as answer:
                return time.perf_counter() - started, int(json.load(answer)["head"])
        except urllib.error.HTTPError as exc:
            exc.close()  # 503: behind
        time.sleep(0.05)
    return float("inf"), -1


# -- the server child -----------------------------------------------------------------


def _serve(
    store: str,
    access_log: bool,
    follow: bool = True,
    views: str = "process",
    log_writer: str = "process",
) -> None:
    """The child: ``metaledger serve`` on ``store`` plus the floor routes, port chosen.

    ``views`` is ``--views-follower`` (a child process, or ``inline``). Without
    ``follow`` the live views are not kept current (a diagnostic figure: what the
    append costs the server apart from the views' upkeep). ``/readyz`` answers
    200 only once the views reach the head (``ready_lag`` 0).
    """
    import logging

    import anyio
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from eventstore import parse_lines
    from eventstore.logs import configure_logging
    from server.api import json_response
    from server.auth import require_scope
    from server.bodies import read_body
    from server.config import Limits, ServerConfig
    from server.routes import all_routes
    from server.serving import serve

    async def floor(request: Request) -> Response:
        require_scope(request, "ingest")
        limits = request.app.state.ledger.config.limits
        body = await read_body(
            request,
            max_bytes=limits.max_body_bytes,
            max_decompressed=limits.max_decompressed_bytes,
        )
        parsed = parse_lines(body, request.app.state.ledger.store.codec)
        report = {
            "appended": len(parsed.lines),
            "already_stored": 0,
            "first_position": None,
            "last_position": None,
        }
        return json_response(report, 201)

    from eventstore.openlineage import (
        IngestOutcome,
        IngestResult,
        InvalidOpenLineageEvent,
        outcome_for,
    )
    from eventstore.openlineage import received_for as map_event
    from server.openlineage_api import lineage_answer

    async def map_only(parsed: Sequence[Any]) -> IngestResult:
        """Everything ``ingest_parsed`` does but the append: each event mapped, 'stored'."""
        outcomes = []
        for item in parsed:
            if isinstance(item, InvalidOpenLineageEvent):
                outcomes.append(IngestOutcome(item.index, "invalid", reason=item.reason))
            else:
                map_event(item)
                outcomes.append(outcome_for(item, "stored", None))
        return IngestResult(outcomes)

    async def lineage_floor(request: Request) -> Response:
        return await lineage_answer(request, map_only)

    if not follow:
        from anyio.abc import TaskStatus

        from projections.views import Views

        async def idle(self: Views, *, task_status: TaskStatus[None]) -> None:
            task_status.started()
            await anyio.sleep_forever()

        Views.follow = idle  # type: ignore[assignment,method-assign]

    configure_logging(logging.INFO)
    config = ServerConfig(
        store_uri=store,
        port=0,
        limits=Limits(max_batch=1000),
        access_log=access_log,
        ready_lag=0,
        views_follower="process" if follow and views == "process" else "inline",
        log_writer=log_writer,  # type: ignore[arg-type]
    )

    def listening(host: str, port: int) -> None:
        print(f"http://{host}:{port}", flush=True)

    routes = [
        Route("/bench/floor", floor, methods=["POST"]),
        Route("/bench/lineage-floor", lineage_floor, methods=["POST"]),
        *all_routes(),
    ]
    anyio.run(
        functools.partial(serve, routes=routes),
        config,
        listening,
        backend_options={"use_uvloop": True},
    )


def _start(
    store: str,
    access_log: bool,
    follow: bool = True,
    views: str = "process",
    log_writer: str = "process",
) -> tuple[subprocess.Popen[str], str]:
    quiet = ([] if access_log else ["--no-access-log"]) + ([] if follow else ["--no-follow"])
    quiet += ["--views-follower", views, "--log-writer", log_writer]
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_server", "--serve-child", store, *quiet],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert child.stdout is not None
    url = child.stdout.readline().strip()
    if not url.startswith("http://"):
        child.kill()
        raise SystemExit("the server did not start")
    return child, url


# -- the Python API baseline ------------------------------------------------------------


def _python_batches(store: str, *, seconds: float, tasks: int, batch: int) -> float:
    """Events a second: ``append_lines`` of ``batch``-line bodies from ``tasks`` tasks."""
    import json
    import uuid

    import anyio

    from eventstore import append_lines, open_store

    def body() -> bytes:
        lines = []
        for _ in range(batch):
            run_id = str(uuid.uuid4())
            lines.append(
                json.dumps(
                    {
                        "stream_id": f"run-{run_id}",
                        "type": "run.started",
                        "expected_version": "no_stream",
                        "data": {
                            "run_id": run_id,
                            "pipeline_name": "bench",
                            "run_name": f"bench-{run_id}",
                            "started_at": "2026-01-01T00:00:00Z",
                            "config": {"pad": _PAD},
                        },
                    }
                )
            )
        return ("\n".join(lines) + "\n").encode()

    async def run() -> float:
        stored = 0
        async with open_store(store) as opened:
            deadline = time.perf_counter() + seconds
            started = time.perf_counter()

            async def appender() -> None:
                nonlocal stored
                while time.perf_counter() < deadline:
                    result = await append_lines(opened, body())
                    stored += result.appended

            async with anyio.create_task_group() as group:
                for _ in range(tasks):
                    group.start_soon(appender)
            return stored / (time.perf_counter() - started)

    return anyio.run(run)


def _python_lineage(store: str, *, seconds: float, tasks: int, batch: int) -> float:
    """Events a second: ``ingest`` of ``batch``-event JSON arrays from ``tasks`` tasks."""
    import uuid

    import anyio

    from eventstore import open_store
    from eventstore.openlineage import ingest

    prefix = uuid.uuid4().int >> 64

    counter = 0

    def event() -> str:
        # As the wrk script: 10 tasks a DAG run, tables over 100 shards.
        nonlocal counter
        counter += 1
        parent = uuid.UUID(int=(prefix << 64) | (counter // 10))
        return lineage_event(str(uuid.uuid4()), str(parent), counter % 100)

    def body() -> bytes:
        return ("[" + ",".join(event() for _ in range(batch)) + "]").encode()

    async def run() -> float:
        stored = 0
        async with open_store(store, create=True) as opened:
            deadline = time.perf_counter() + seconds
            started = time.perf_counter()

            async def appender() -> None:
                nonlocal stored
                while time.perf_counter() < deadline:
                    result = await ingest(opened, body())
                    stored += result.count("stored")

            async with anyio.create_task_group() as group:
                for _ in range(tasks):
                    group.start_soon(appender)
            return stored / (time.perf_counter() - started)

    return anyio.run(run)


# -- the report -------------------------------------------------------------------------


def _row(name: str, load: Load, unit: str = "req/s", scale: int = 1) -> None:
    print(
        f"  {name:<44} {load.requests_per_s * scale:>10,.0f} {unit:<9}"
        f" p50 {load.p50_ms:>7.1f} ms  p99 {load.p99_ms:>7.1f} ms"
        + (f"  ({load.errors} errors)" if load.errors else "")
    )


def _ratios(title: str, one: Load, floor: Load, many: Load, python: float) -> None:
    print(
        f"{title}: single / floor H {one.requests_per_s / floor.requests_per_s:.2f} "
        f"(target >= 0.6), single p99 {one.p99_ms:.0f} ms (target <= 50); "
        f"batched HTTP / batched Python {many.requests_per_s * 100 / python:.2f} (target >= 0.5)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the figures and print them."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_server")
    parser.add_argument("--seconds", type=int, default=5, help="per figure (default 5)")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections (50)")
    parser.add_argument("--store", help="a store URI (default: a fresh SQLite store)")
    parser.add_argument(
        "--no-access-log", action="store_true", help="serve without the per-request log line"
    )
    parser.add_argument(
        "--write-api", action="store_true", help="also measure the generic write API"
    )
    parser.add_argument("--serve-child", help=argparse.SUPPRESS)
    parser.add_argument("--no-follow", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--views-follower",
        choices=("process", "inline"),
        default="process",
        help="who keeps the server's views current (as `metaledger serve --views-follower`)",
    )
    parser.add_argument(
        "--log-writer",
        choices=("process", "thread"),
        default="process",
        help="who commits the appends (as `metaledger serve --log-writer`)",
    )
    args = parser.parse_args(argv)
    if args.serve_child:
        _serve(
            args.serve_child,
            not args.no_access_log,
            not args.no_follow,
            args.views_follower,
            args.log_writer,
        )
        return 0
    if shutil.which("wrk") is None:
        print("bench_server needs wrk (apt-get install wrk)", file=sys.stderr)
        return 1
    scratch = Path(tempfile.mkdtemp(prefix="bench-server-"))
    try:
        store = args.store or str(scratch / "store")
        scripts = {
            name: scratch / f"{name}.lua"
            for name in ("single", "batched", "ol-single", "ol-batched")
        }
        scripts["single"].write_text(_LUA % {"batch": 1, "pad": _PAD})
        scripts["batched"].write_text(_LUA % {"batch": 100, "pad": _PAD})
        scripts["ol-single"].write_text(_ol_script(1))
        scripts["ol-batched"].write_text(_ol_script(100))
        load_before = os.getloadavg()
        measured: dict[str, Load] = {}
        lags: dict[str, tuple[float, int]] = {}
        load = {"seconds": args.seconds, "connections": args.connections}
        logged = not args.no_access_log
        separate = args.store is None

        def fresh(name: str) -> str:
            return str(scratch / name) if separate else store

        # Each ingest figure gets a fresh server and store: views still catching
        # up on one figure's events would slow the next.
        views, writer = args.views_follower, args.log_writer
        child, url = _start(store, logged, views=views, log_writer=writer)
        try:
            measured["noop"] = _wrk(f"{url}/healthz", script=None, **load)
            measured["ol-floor"] = _wrk(
                f"{url}/bench/lineage-floor", script=scripts["ol-single"], **load
            )
            measured["ol-one"] = _wrk(f"{url}/api/v1/lineage", script=scripts["ol-single"], **load)
            lags["single"] = _catch_up_seconds(url)
        finally:
            child.terminate()
            child.wait(60)
        child, url = _start(fresh("store-batched"), logged, views=views, log_writer=writer)
        try:
            measured["ol-many"] = _wrk(
                f"{url}/api/v1/lineage", script=scripts["ol-batched"], **load
            )
            lags["batched"] = _catch_up_seconds(url)
        finally:
            child.terminate()
            child.wait(60)
        child, url = _start(fresh("store-no-views"), logged, follow=False, log_writer=writer)
        try:
            # Floor H again, minutes later: the machine's load moves; the mean is the floor.
            again = _wrk(f"{url}/bench/lineage-floor", script=scripts["ol-single"], **load)
            first = measured["ol-floor"]
            measured["ol-floor"] = Load(
                (first.requests_per_s + again.requests_per_s) / 2,
                (first.p50_ms + again.p50_ms) / 2,
                max(first.p99_ms, again.p99_ms),
                first.errors + again.errors,
            )
            floors = (first.requests_per_s, again.requests_per_s)
            measured["ol-bare"] = _wrk(f"{url}/api/v1/lineage", script=scripts["ol-single"], **load)
            measured["ol-bare-many"] = _wrk(
                f"{url}/api/v1/lineage", script=scripts["ol-batched"], **load
            )
        finally:
            child.terminate()
            child.wait(60)
        if args.write_api:
            child, url = _start(fresh("store-write-api"), logged, views=views, log_writer=writer)
            try:
                events = f"{url}/api/metaledger/v1/events"
                measured["floor"] = _wrk(f"{url}/bench/floor", script=scripts["single"], **load)
                measured["one"] = _wrk(events, script=scripts["single"], **load)
                measured["many"] = _wrk(events, script=scripts["batched"], **load)
            finally:
                child.terminate()
                child.wait(60)
        ol_python = _python_lineage(
            str(scratch / "python-ol-store") if separate else store,
            seconds=args.seconds,
            tasks=args.connections,
            batch=100,
        )
        python = (
            _python_batches(
                str(scratch / "python-store") if separate else store,
                seconds=args.seconds,
                tasks=args.connections,
                batch=100,
            )
            if args.write_api
            else 0.0
        )
        load_after = os.getloadavg()
        print(
            f"metaledger serve, {args.connections} connections, {args.seconds} s each, "
            f"{'with' if logged else 'without'} the access log, views follower {views}, "
            f"log writer {writer}; "
            f"load average {load_before[0]:.2f} before, "
            f"{load_after[0]:.2f} after:"
        )
        _row("floor N: GET /healthz", measured["noop"])
        _row("OpenLineage floor H: parse, map, 201 (mean)", measured["ol-floor"])
        _row("OpenLineage single-event ingest (durable)", measured["ol-one"])
        _row("OpenLineage batched, 100 events a request", measured["ol-many"], "events/s", 100)
        print(f"    (floor H measured {floors[0]:,.0f} and {floors[1]:,.0f} req/s)")
        for name, (seconds, head) in lags.items():
            print(f"    ({name}: views at the head, {head:,}, {seconds:.1f} s after the load)")
        _row("  single, live views not kept (diagnostic)", measured["ol-bare"])
        _row("  batched, live views not kept", measured["ol-bare-many"], "events/s", 100)
        print(f"  {'batched Python API (ingest, no HTTP)':<44} {ol_python:>10,.0f} events/s")
        if args.write_api:
            _row("write API floor H: parse, validate, 201", measured["floor"])
            _row("write API single-event ingest (durable)", measured["one"])
            _row("write API batched, 100 events a request", measured["many"], "events/s", 100)
            print(f"  {'batched Python API (append_lines)':<44} {python:>10,.0f} events/s")
        _ratios(
            "OpenLineage", measured["ol-one"], measured["ol-floor"], measured["ol-many"], ol_python
        )
        bare = measured["ol-bare"]
        print(
            f"  without the live views: single / floor H "
            f"{bare.requests_per_s / measured['ol-floor'].requests_per_s:.2f}, "
            f"p99 {bare.p99_ms:.0f} ms; batched HTTP / batched Python "
            f"{measured['ol-bare-many'].requests_per_s * 100 / ol_python:.2f}"
        )
        if args.write_api:
            _ratios("write API", measured["one"], measured["floor"], measured["many"], python)
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
