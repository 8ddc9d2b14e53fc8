"""``metaledger serve``: started as a user starts it, on a real port, over real stores.

Every test runs the server in a subprocess (``tests/server_process.py``) and
talks to it over HTTP with httpx; the store is a SQLite directory or a
PostgreSQL schema prefix (``backend`` fixture), and the CLI reads the same
store to check the API against ``--json``.
"""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from click.testing import CliRunner

from cli.main import cli

from .conftest import drop_schemas
from .server_process import ServerProcess, running_server

API = "/api/metaledger/v1"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store: a SQLite directory, or a PostgreSQL schema prefix."""
    if request.param == "postgres":
        uri: str = request.getfixturevalue("postgres_uri")
        return uri
    return str(tmp_path / "store")


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, ServerProcess]]:
    """One server for the module's read tests: a demo store plus three runs.

    Tests using it may append (each checks against what it reads first), never
    delete or stop it: starting a server costs seconds.
    """
    if request.param == "postgres":
        dsn: str = request.getfixturevalue("postgres_server")
        prefix = f"srv{uuid4().hex[:10]}"
        store = f"{dsn}?schema_prefix={prefix}"
    else:
        store = str(tmp_path_factory.mktemp("served") / "store")
    try:
        metaledger(store, "demo")
        with running_server(store) as server:
            for _ in range(3):
                answer = httpx.post(f"{server.url}{API}/events", content=body_of(run_lines()))
                assert answer.status_code == 201
            yield store, server
    finally:
        if request.param == "postgres":
            drop_schemas(dsn, prefix)


def metaledger(store: str, *args: str, code: int = 0) -> Any:
    """Run a CLI command in-process with ``--json``; its parsed output."""
    result = CliRunner().invoke(cli, ["--store", store, *args, "--json"], catch_exceptions=False)
    assert result.exit_code == code, (args, result.stdout, result.stderr)
    return json.loads(result.stdout)


def run_lines(run_id: UUID | None = None, pipeline: str = "etl") -> list[dict[str, Any]]:
    """One finished run with one step, as ``events append`` lines."""
    run_id = run_id or uuid4()
    step_id = uuid4()
    stream = f"run-{run_id}"
    return [
        {"stream_id": stream, "type": "run.started", "expected_version": "no_stream",
         "data": {"run_id": str(run_id), "pipeline_name": pipeline,
                  "run_name": f"{pipeline}-{run_id.hex[:12]}",
                  "started_at": "2026-01-01T00:00:00Z"}},
        {"stream_id": stream, "type": "step.started",
         "data": {"run_id": str(run_id), "step_run_id": str(step_id), "step_name": "load",
                  "started_at": "2026-01-01T00:00:01Z"}},
        {"stream_id": stream, "type": "step.finished",
         "data": {"run_id": str(run_id), "step_run_id": str(step_id), "status": "completed",
                  "finished_at": "2026-01-01T00:00:02Z"}},
        {"stream_id": stream, "type": "run.finished",
         "data": {"run_id": str(run_id), "status": "completed",
                  "finished_at": "2026-01-01T00:00:03Z"}},
    ]  # fmt: skip


def body_of(lines: list[dict[str, Any]]) -> bytes:
    """JSON lines, as a POST body."""
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def head_of(url: str, headers: dict[str, str] | None = None) -> int:
    """The log's head, as the read API says."""
    found = httpx.get(f"{url}{API}/verify", headers=headers).json()
    head: int = found["head_position"]
    return head


class TestServing:
    """The process: it listens, answers probes, and stops cleanly."""

    def test_healthz_and_readyz_answer_and_a_signal_stops_cleanly(self, store_uri: str) -> None:
        """SIGTERM (on SQLite) and SIGINT (on PostgreSQL) stop it gracefully: exit 0."""
        sig = signal.SIGINT if "://" in store_uri else signal.SIGTERM
        opened = threading.Event()
        with running_server(store_uri) as server:
            assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
            ready = httpx.get(f"{server.url}/readyz")
            assert ready.status_code == 200
            assert ready.json()["status"] == "ready"
            # An open event stream does not hold the stop up: it ends when the server stops.

            def listen() -> None:
                with httpx.stream("GET", f"{server.url}{API}/events/stream", timeout=60) as r:
                    for line in r.iter_lines():
                        if line.startswith("id: "):
                            opened.set()

            listener = threading.Thread(target=listen)
            listener.start()
            assert opened.wait(30)
            assert server.stop(sig) == 0
            listener.join(30)
            assert not listener.is_alive()
        assert "ledger_closed" in server.stderr()
        # One structured line per request.
        assert server.stderr().count("path=/readyz") == 1

    def test_a_second_ctrl_c_forces_the_stop_without_a_traceback(self, tmp_path: Path) -> None:
        with running_server(str(tmp_path / "store")) as server:
            assert httpx.get(f"{server.url}/healthz?probe=forced").status_code == 200
            server.process.send_signal(signal.SIGINT)
            server.wait_for_line(r"Shutting down")
            code = server.stop(signal.SIGINT)  # the second: uvicorn stops waiting on anything
        assert code == 0
        assert "Traceback" not in server.stderr()
        assert "ledger_closed" in server.stderr()
        assert "probe=forced" in server.stderr()  # the access log was still flushed

    def test_a_non_loopback_address_without_tokens_is_refused(self, tmp_path: Path) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "cli", "--store", str(tmp_path / "s"), "serve",
             "--host", "0.0.0.0", "--port", "0"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 1
        assert "refusing to serve 0.0.0.0 without tokens" in done.stderr
        assert "Traceback" not in done.stderr
        assert not (tmp_path / "s").exists()

    def test_a_port_in_use_is_one_line(self, tmp_path: Path) -> None:
        import socket

        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            done = subprocess.run(
                [sys.executable, "-m", "cli", "--store", str(tmp_path / "s"), "serve",
                 "--port", str(port)],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
        assert done.returncode == 1
        assert done.stderr == f"Error: cannot listen on 127.0.0.1:{port}: Address already in use\n"

    def test_a_store_that_cannot_open_is_one_line_and_its_exit_code(self, tmp_path: Path) -> None:
        foreign = tmp_path / "foreign"
        foreign.mkdir()
        (foreign / "ledger.db").write_bytes(b"not a database" * 100)
        done = subprocess.run(
            [sys.executable, "-m", "cli", "--store", str(foreign), "serve", "--port", "0"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 3, done.stderr
        assert "Traceback" not in done.stderr
        assert "serving" not in done.stderr


class TestTokens:
    """Bearer tokens: created by the CLI, stored hashed, checked with scopes."""

    @pytest.fixture
    def tokens(self, tmp_path: Path) -> tuple[Path, str, str]:
        path = tmp_path / "tokens.json"
        ingest = metaledger("x", "token", "create", "airflow", "--scope", "ingest",
                            "--token-file", str(path))["token"]  # fmt: skip
        read = metaledger("x", "token", "create", "dash", "--scope", "read",
                          "--token-file", str(path))["token"]  # fmt: skip
        return path, ingest, read

    def test_the_file_holds_hashes_never_secrets(self, tokens: tuple[Path, str, str]) -> None:
        path, ingest, read = tokens
        text = path.read_text()
        assert ingest not in text
        assert read not in text
        assert path.stat().st_mode & 0o077 == 0
        listed = metaledger("x", "token", "list", "--token-file", str(path))
        assert [(t["name"], t["scopes"]) for t in listed] == [
            ("airflow", ["ingest"]),
            ("dash", ["read"]),
        ]
        result = CliRunner().invoke(
            cli, ["token", "create", "airflow", "--scope", "read", "--token-file", str(path)]
        )
        assert result.exit_code == 8  # already exists, as for every other name
        assert "exists already" in result.stderr
        result = CliRunner().invoke(cli, ["token", "revoke", "airflw", "--token-file", str(path)])
        assert result.exit_code == 4
        assert "did you mean 'airflow'?" in result.stderr

    def test_401_without_or_with_a_wrong_token_403_for_a_wrong_scope(
        self, tmp_path: Path, tokens: tuple[Path, str, str]
    ) -> None:
        path, ingest, read = tokens
        lines = body_of(run_lines())
        with running_server(str(tmp_path / "store"), extra_args=["--token-file", str(path)]) as s:
            events = f"{s.url}{API}/events"
            assert httpx.get(f"{s.url}/healthz").status_code == 200  # probes need no token
            missing = httpx.get(events)
            assert missing.status_code == 401
            assert missing.json()["error"] == "unauthorized"
            assert missing.headers["www-authenticate"].startswith("Bearer")
            wrong = httpx.get(events, headers={"Authorization": "Bearer mlk_nope"})
            assert wrong.status_code == 401
            assert httpx.post(events, content=lines).status_code == 401
            as_reader = httpx.post(events, content=lines, headers=_bearer(read))
            assert as_reader.status_code == 403
            assert as_reader.json()["error"] == "forbidden"
            assert httpx.get(events, headers=_bearer(ingest)).status_code == 403
            stream = httpx.get(f"{events}/stream", headers=_bearer(ingest))
            assert stream.status_code == 403
            before = head_of(s.url, _bearer(read))
            assert httpx.post(events, content=lines, headers=_bearer(ingest)).status_code == 201
            assert head_of(s.url, _bearer(read)) == before + 4
        assert "token=airflow" in s.stderr()


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


class TestBoundedInput:
    """Too large, gzip bombs, bad gzip, too many events: refused, nothing stored, still serving."""

    def test_refused_bodies_store_nothing_and_the_server_keeps_serving(
        self, store_uri: str
    ) -> None:
        limits = ["--max-body", "4096", "--max-inflated", "65536", "--max-batch", "8"]
        with running_server(store_uri, extra_args=limits) as server:
            events = f"{server.url}{API}/events"
            before = head_of(server.url)
            refused = {
                "oversized": httpx.post(events, content=b"x" * 5000),
                "oversized, chunked": httpx.post(events, content=iter([b"x" * 3000] * 2)),
                "gzip bomb": httpx.post(
                    events,
                    content=gzip.compress(b"\n" * 2_000_000),
                    headers={"Content-Encoding": "gzip"},
                ),
                "too many events": httpx.post(events, content=body_of(run_lines() * 3)),
            }
            for name, answer in refused.items():
                assert answer.status_code == 413, name
                assert answer.json()["error"] == "too_large", name
            bad = {
                "bad gzip": httpx.post(
                    events, content=b"\x1f\x8bnot gzip", headers={"Content-Encoding": "gzip"}
                ),
                "malformed JSON": httpx.post(events, content=b'{"stream_id": \n'),
                "unknown type": httpx.post(
                    events, content=b'{"stream_id":"workspace","type":"nope","data":{}}\n'
                ),
            }
            for name, answer in bad.items():
                assert answer.status_code == 400, name
                assert answer.json()["message"], name
            assert bad["unknown type"].json()["faults"][0].startswith("line 1:")
            assert head_of(server.url) == before
            # Still serving, and a body within bounds (gzip too) is stored.
            small = gzip.compress(body_of(run_lines()))
            ok = httpx.post(events, content=small, headers={"Content-Encoding": "gzip"})
            assert ok.status_code == 201, ok.text
            assert head_of(server.url) == before + 4


class TestWriteApi:
    """``POST /events``: the lines of ``events append``, validated, idempotent."""

    def test_append_then_retry_stores_once_and_rules_refuse_with_422(
        self, served: tuple[str, ServerProcess]
    ) -> None:
        _, server = served
        events = f"{server.url}{API}/events"
        run_id = uuid4()
        body = body_of(run_lines(run_id))
        first = httpx.post(events, content=body)
        assert first.status_code == 201
        assert first.json()["appended"] == 4
        again = httpx.post(events, content=body)
        assert again.status_code == 200
        assert again.json() == {
            "appended": 0,
            "already_stored": 4,
            "first_position": None,
            "last_position": None,
        }
        # A step in a run that finished: the domain rules refuse it.
        late = run_lines(run_id)[1]
        late["data"]["step_run_id"] = str(uuid4())
        refused = httpx.post(events, content=body_of([late]))
        assert refused.status_code == 422
        assert refused.json()["error"] == "rule_breach"
        described = httpx.get(f"{events[: -len('/events')]}/runs/{run_id}").json()
        assert described["status"] == "completed"
        assert [s["name"] for s in described["steps"]] == ["load"]


class TestReadApi:
    """The read API answers what the CLI's ``--json`` answers, on the same store."""

    def test_every_read_equals_the_cli_json(self, served: tuple[str, ServerProcess]) -> None:
        store, server = served
        api = f"{server.url}{API}"
        head = head_of(server.url)
        run_id = metaledger(store, "run", "list")[0]["run_id"]
        model = "training_pipeline.train.model"
        pairs: dict[str, tuple[str, ...]] = {
            "/stacks": ("stack", "list"),
            "/stacks/default": ("stack", "describe", "default"),
            "/components?type=orchestrator": ("orchestrator", "list"),
            "/components/orchestrator/default": ("orchestrator", "describe", "default"),
            "/pipelines": ("pipeline", "list"),
            "/runs": ("run", "list"),
            "/runs?pipeline=etl&status=completed": (
                "run", "list", "--pipeline", "etl", "--status", "completed"
            ),
            f"/runs/{run_id}": ("run", "describe", run_id),
            "/artifacts": ("artifact", "list"),
            f"/artifacts/{model}": ("artifact", "describe", model),
            f"/lineage?artifact={model}&direction=upstream&depth=2": (
                "artifact", "lineage", model, "--upstream", "--depth", "2"
            ),
            "/events?from=3&limit=5": ("events", "list", "--from", "3", "--limit", "5"),
            "/verify": ("verify",),
            "/projections": ("projections", "status"),
            "/runs?as_of=20": ("run", "list", "--as-of", "20"),
            f"/stacks?as_of={head - 1}": ("stack", "list", "--as-of", str(head - 1)),
        }  # fmt: skip
        for path, command in pairs.items():
            answer = httpx.get(f"{api}{path}")
            assert answer.status_code == 200, (path, answer.text)
            assert answer.json() == metaledger(store, *command), path

    def test_run_pages_follow_the_link_without_gap_or_repeat(
        self, served: tuple[str, ServerProcess]
    ) -> None:
        _, server = served
        api = f"{server.url}{API}"
        every = [r["run_id"] for r in httpx.get(f"{api}/runs?limit=1000").json()]
        assert len(every) >= 4
        seen: list[str] = []
        url = f"{api}/runs?limit=2"
        while url:
            page = httpx.get(url)
            seen += [r["run_id"] for r in page.json()]
            link = page.headers.get("link")
            url = f"{server.url}{link[1 : link.index('>')]}" if link else ""
            # A run appended between pages starts before every listed one: never seen here.
            httpx.post(f"{api}/events", content=body_of(run_lines()))
        assert seen == every
        stale = httpx.get(f"{api}/runs?after={uuid4()}")
        assert stale.status_code == 400

    def test_bad_parameters_and_unknown_things_are_4xx_not_500(
        self, served: tuple[str, ServerProcess]
    ) -> None:
        _, server = served
        api = f"{server.url}{API}"
        cases = {
            "/runs?limit=0": 400,
            "/runs?limit=abc": 400,
            "/runs?since=yesterday-ish": 400,
            "/runs?as_of=99999": 400,
            "/runs?as_of=not-a-time": 400,
            "/runs/nope-nope": 404,
            "/artifacts/none:1": 404,
            "/lineage": 400,
            "/events?from=-1": 400,
            "/nowhere": 404,
        }
        for path, status in cases.items():
            answer = httpx.get(f"{api}{path}")
            assert answer.status_code == status, (path, answer.text)
            assert set(answer.json()) >= {"error", "message"}, path
        assert "Traceback" not in server.stderr()


class TestEventStream:
    """The SSE stream: one event per entry, resumable without gap or repeat."""

    def test_a_reconnect_with_last_event_id_loses_and_repeats_nothing(
        self, served: tuple[str, ServerProcess]
    ) -> None:
        _, server = served
        api = f"{server.url}{API}"
        for _ in range(3):
            assert httpx.post(f"{api}/events", content=body_of(run_lines())).status_code == 201
        head = head_of(server.url)
        seen = _read_stream(f"{api}/events/stream?from=1", {}, count=head - 4)
        # Appends land while the client is away, then it reconnects.
        assert httpx.post(f"{api}/events", content=body_of(run_lines())).status_code == 201
        last = str(seen[-1][0])
        seen += _read_stream(f"{api}/events/stream", {"Last-Event-ID": last}, count=8)
        # And it keeps streaming what is appended while it listens.
        listened: list[tuple[int, dict[str, Any]]] = []
        listener = threading.Thread(
            target=lambda: listened.extend(
                _read_stream(f"{api}/events/stream?from={head + 5}", {}, count=4)
            )
        )
        listener.start()
        assert httpx.post(f"{api}/events", content=body_of(run_lines())).status_code == 201
        listener.join(30)
        seen += listened
        positions = [p for p, _ in seen]
        assert positions == list(range(1, head + 9))
        assert all(item["position"] == p for p, item in seen)
        assert len({item["event_id"] for _, item in seen}) == len(seen)


def _read_stream(url: str, headers: dict[str, str], *, count: int) -> list[tuple[int, Any]]:
    """The first ``count`` events of an SSE stream: (id, data) pairs; then disconnect."""
    found: list[tuple[int, Any]] = []
    event_id: int | None = None
    with httpx.stream("GET", url, headers=headers, timeout=30) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: "):
                assert event_id is not None
                found.append((event_id, json.loads(line[6:])))
                if len(found) == count:
                    break
    return found


class TestStopping:
    """A stop mid-ingest loses no acknowledged event: killed (SIGKILL) or stopped (SIGTERM)."""

    @pytest.mark.slow
    @pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
    def test_no_acknowledged_append_is_lost(self, store_uri: str, sig: int) -> None:
        acknowledged: list[bytes] = []
        enough = threading.Event()
        with running_server(store_uri) as server:
            events = f"{server.url}{API}/events"

            def post_batches() -> None:
                with httpx.Client(timeout=30) as client:
                    while True:
                        body = body_of([line for _ in range(3) for line in run_lines()])
                        try:
                            answer = client.post(events, content=body)
                        except httpx.TransportError:
                            return  # the server went away: this batch was not acknowledged
                        if answer.status_code != 201:
                            return
                        acknowledged.append(body)
                        if len(acknowledged) >= 6:
                            enough.set()

            posters = [threading.Thread(target=post_batches) for _ in range(3)]
            for poster in posters:
                poster.start()
            assert enough.wait(60)
            code = server.stop(sig)
            for poster in posters:
                poster.join(60)
        assert code == (0 if sig == signal.SIGTERM else -signal.SIGKILL)
        with running_server(store_uri) as again:
            events = f"{again.url}{API}/events"
            for body in acknowledged:
                retry = httpx.post(events, content=body)
                # Stored before: the retry is a no-op, every event already there.
                assert (retry.status_code, retry.json()["already_stored"]) == (200, 12)
            assert httpx.get(f"{again.url}{API}/verify").json()["ok"] is True


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx honours proxy variables; the servers here are on loopback."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


class TestInProcess:
    """``create_app(config)`` opens its own ledger in its lifespan (for in-process use)."""

    async def test_the_lifespan_opens_and_closes_the_store(self, tmp_path: Path) -> None:
        from server import ServerConfig, create_app

        app = create_app(ServerConfig(store_uri=str(tmp_path / "store")))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://local") as client:
                assert (await client.get("/healthz")).json() == {"status": "ok"}
                posted = await client.post(f"{API}/events", content=body_of(run_lines()))
                assert posted.status_code == 201
                stacks = (await client.get(f"{API}/stacks")).json()
                assert [s["name"] for s in stacks] == ["default"]
            ledger = app.state.ledger
        assert ledger.stopping.is_set()
        from eventstore import open_store

        async with open_store(str(tmp_path / "store"), create=False) as store:
            last = await store.stored_at(await store.head())
        assert last is not None
        assert last.type == "run.finished"


class TestInflate:
    """The bounded gzip inflation itself (no server)."""

    def test_bounds_truncation_and_concatenated_members(self) -> None:
        from starlette.exceptions import HTTPException

        from server.bodies import inflate

        data = bytes(range(256)) * 4000
        packed = gzip.compress(data)
        assert inflate(packed, len(data)) == data
        with pytest.raises(HTTPException) as over:
            inflate(packed, len(data) - 1)
        assert over.value.status_code == 413
        with pytest.raises(HTTPException) as cut:
            inflate(packed[: len(packed) // 2], len(data))
        assert cut.value.status_code == 400
        assert inflate(packed + gzip.compress(b"tail"), len(data) + 4) == data + b"tail"
        with pytest.raises(HTTPException) as second:
            inflate(packed + gzip.compress(b"tail"), len(data) + 3)
        assert second.value.status_code == 413
