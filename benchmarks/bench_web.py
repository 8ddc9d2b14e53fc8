"""The web pages against the JSON reads they are built from: ``python -m benchmarks.bench_web``.

Issue 15's target: the runs page and the lineage page answer in at most 2x the
time of the JSON read they are built from. Both sides are measured the same
way, in the same run, against one ``metaledger serve`` on a real port: the
median of sequential GETs (after a warm-up) through one HTTP client.

- Runs: ``GET /`` (the newest 50, the count, the stack filter's names)
  against ``GET /api/metaledger/v1/runs?limit=50``, on a store of ``--runs``
  runs (100,000 by default), and the same for a page deep in the listing (its
  cursor taken from the page before, keyset, not offset).
- Lineage: ``GET /lineage?artifact=ROOT&direction=downstream&depth=D`` against
  ``GET /api/metaledger/v1/lineage?...`` with the same parameters, on a graph of
  ``--lineage-nodes`` nodes (500 by default): a root artifact read by 25 runs,
  each a chain of steps and artifacts. Twice: each request with another depth
  (the page lays the graph out and draws it afresh each time), and the same
  request repeated (the page keeps its last drawings, keyed by the graph).

Options: ``--quick`` (2,000 runs, a 100-node lineage), ``--runs N``,
``--lineage-nodes N``, ``--repeats N``, ``--dir PATH``, ``--only runs|lineage``,
``--runs-store PATH`` (a store filled before, e.g. by ``benchmarks.bench``'s
``fill_lifecycle_store``: filling 100,000 runs takes about 5 minutes here and
catching its views up about 7).
A report, not a test: it prints the figures and ratios and exits 0 whether or not the target is met.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import httpx

from benchmarks.bench import fill_lifecycle_store
from eventstore import open_store
from tests.server_process import running_server

#: Runs in the lineage fixture (parallel chains from one root artifact).
CHAINS = 25
TARGET = 2.0


async def fill_lineage(directory: Path, nodes: int) -> str:
    """A root artifact read by ``CHAINS`` runs, each a chain of steps; the root's id.

    Downstream of the root, the graph holds about ``nodes`` nodes: the root,
    and per chain ``nodes // (2 * CHAINS)`` steps each producing one artifact.
    """
    steps = max(nodes // (2 * CHAINS), 1)
    async with open_store(directory, durability="normal") as store:
        async with store.pipeline_run("ingest") as run, run.step("load") as step:
            root = await step.produce("raw", uri="file:///data/raw.parquet")
        for chain in range(CHAINS):
            async with store.pipeline_run(f"chain_{chain:02d}") as run:
                previous = root
                for index in range(steps):
                    async with run.step(f"step_{index:02d}") as step:
                        await step.consume("input", previous)
                        previous = await step.produce(
                            "output", uri=f"file:///data/{chain}/{index}.parquet"
                        )
    return str(root)


def _median_ms(client: httpx.Client, url: str, repeats: int) -> float:
    for _ in range(3):
        client.get(url).raise_for_status()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        client.get(url).raise_for_status()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _wait_ready(client: httpx.Client, timeout: float = 3600) -> None:
    """Until ``/readyz`` says the views caught up (a 100,000-run store takes a while)."""
    deadline = time.monotonic() + timeout
    while client.get("/readyz").status_code != 200:
        if time.monotonic() > deadline:
            raise SystemExit("the views never caught up")
        time.sleep(0.5)  # polling a server in a report script, not in a test


def _catch_up(store: Path) -> None:
    """Bring the store's views to its head before serving (the server starts faster)."""
    subprocess.run(
        [sys.executable, "-m", "cli", "--store", str(store), "run", "list", "--limit", "1"],
        check=True,
        capture_output=True,
    )


def _row(label: str, page_ms: float, json_ms: float) -> str:
    ratio = page_ms / json_ms
    verdict = "ok" if ratio <= TARGET else "OVER"
    return f"{label:<56} {page_ms:9.2f} {json_ms:9.2f} {ratio:7.2f}x  {verdict}"


def _runs_figures(
    directory: Path, runs: int, repeats: int, existing: Path | None = None
) -> list[str]:
    store = existing or directory / "runs-store"
    if existing is None:
        print(f"filling a store with {runs:,} runs ...", file=sys.stderr)
        started = time.perf_counter()
        head = anyio.run(fill_lifecycle_store, store, runs)
        filled = time.perf_counter()
        print(f"filled: {head:,} events in {filled - started:.0f} s", file=sys.stderr)
        print("catching the views up ...", file=sys.stderr)
        _catch_up(store)
        print(f"views caught up in {time.perf_counter() - filled:.0f} s", file=sys.stderr)
    lines = []
    with running_server(str(store)) as server, httpx.Client(base_url=server.url) as client:
        print("waiting for the views to catch up ...", file=sys.stderr)
        _wait_ready(client)
        lines.append(
            _row(
                f"runs page, newest 50 of {runs:,}",
                _median_ms(client, "/", repeats),
                _median_ms(client, "/api/metaledger/v1/runs?limit=50", repeats),
            )
        )
        # A page deep in the listing: follow the JSON API's cursor 20 pages on.
        after = None
        pages = max(min(20, runs // 50 - 1), 0)
        for _ in range(pages):
            listing = client.get(
                "/api/metaledger/v1/runs",
                params={"limit": 50, **({"after": after} if after else {})},
            ).json()
            after = listing[-1]["run_id"]
        if after:
            lines.append(
                _row(
                    f"runs page, a later page (cursor, {pages + 1})",
                    _median_ms(client, f"/?cursor={after}", repeats),
                    _median_ms(client, f"/api/metaledger/v1/runs?limit=50&after={after}", repeats),
                )
            )
    return lines


def _each_once_ms(client: httpx.Client, urls: list[str]) -> float:
    """The median time of GETs of ``urls``, each asked once (so each is a cache miss)."""
    times = []
    for url in urls:
        started = time.perf_counter()
        client.get(url).raise_for_status()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _lineage_figures(directory: Path, nodes: int, repeats: int) -> list[str]:
    store = directory / "lineage-store"
    root = anyio.run(fill_lineage, store, nodes)
    _catch_up(store)
    deep = nodes // (2 * CHAINS) + 2
    query = f"artifact={root}&direction=downstream&depth={deep}"
    # Deeper depths give the same nodes but another graph (its depth differs): each
    # is drawn afresh, as after any change to the lineage.
    fresh = [f"artifact={root}&direction=downstream&depth={d}" for d in range(deep + 1, 51)]
    with running_server(str(store)) as server, httpx.Client(base_url=server.url) as client:
        _wait_ready(client)
        graph = client.get(f"/api/metaledger/v1/lineage?{query}").json()
        size = f"{len(graph['nodes'])} nodes / {len(graph['edges'])} edges"
        return [
            _row(
                f"lineage page, {size}, drawn afresh",
                _each_once_ms(client, [f"/lineage?{q}" for q in fresh[:repeats]]),
                _each_once_ms(client, [f"/api/metaledger/v1/lineage?{q}" for q in fresh[:repeats]]),
            ),
            _row(
                "lineage page, the same graph again (kept)",
                _median_ms(client, f"/lineage?{query}", repeats),
                _median_ms(client, f"/api/metaledger/v1/lineage?{query}", repeats),
            ),
        ]


def main(argv: list[str] | None = None) -> None:
    """Measure and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 runs, a 100-node lineage")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--lineage-nodes", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument(
        "--runs-store",
        type=Path,
        default=None,
        help="measure the runs page on this store (filled before) instead of filling one",
    )
    parser.add_argument(
        "--only", choices=("runs", "lineage"), default=None, help="measure one page only"
    )
    args = parser.parse_args(argv)
    runs = args.runs or (2_000 if args.quick else 100_000)
    nodes = args.lineage_nodes or (100 if args.quick else 500)
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        directory = Path(scratch)
        lines = []
        if args.only != "runs":
            lines += _lineage_figures(directory, nodes, args.repeats)
        if args.only != "lineage":
            lines += _runs_figures(directory, runs, args.repeats, args.runs_store)
    print(f"{'figure':<56} {'page ms':>9} {'JSON ms':>9} {'ratio':>8}  (target <= {TARGET}x)")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
