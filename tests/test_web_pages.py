"""The web pages over HTTP without a browser: what a server with tokens shows them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .server_process import running_server

pytestmark = pytest.mark.slow


def test_a_server_with_tokens_asks_the_pages_for_a_read_token(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    created = {}
    for name, scope in (("dash", "read"), ("airflow", "ingest")):
        done = subprocess.run(
            [sys.executable, "-m", "cli", "token", "create", name, "--scope", scope,
             "--token-file", str(tokens), "--json"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        created[scope] = json.loads(done.stdout)["token"]
    store = str(tmp_path / "store")
    with (
        running_server(store, extra_args=["--token-file", str(tokens)]) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        refused = client.get("/")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "needs a bearer token" in refused.text
        wrong = client.get("/stacks", headers={"Authorization": f"Bearer {created['ingest']}"})
        assert wrong.status_code == 403
        read = {"Authorization": f"Bearer {created['read']}"}
        assert client.get("/", headers=read).status_code == 200
        assert client.get("/events", headers=read).status_code == 200
        # The stylesheet and scripts hold no data: they need no token.
        assert client.get("/static/app.css").status_code == 200


def test_the_browser_check_names_both_majors_when_they_do_not_fit() -> None:
    from .browser import compatibility_problem

    assert compatibility_problem(159, 156) is None
    assert compatibility_problem(159, 160) is None
    problem = compatibility_problem(159, 150)
    assert problem is not None
    assert "major 150" in problem
    assert "Chromium 159" in problem
