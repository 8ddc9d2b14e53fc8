"""Secrets are masked wherever the CLI shows them, unless --show-secrets (issue 10, 6)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from cli.main import cli
from eventstore import Metadata, RunStarted, open_store
from eventstore.defaults import ensure_default_stack
from eventstore.secret_masking import MASK, mask_secrets, mask_uri_credentials

#: Every secret the store below holds, each in a different place.
SECRETS = {
    "component URI password": "URIPW1",
    "component token": "TOKEN2",
    "run config key": "CFGPW3",
    "run config URI password": "URIPW4",
    "step parameter": "PARAM5",
    "step metadata": "META6",
    "run metadata": "RUNMETA7",
    "artifact URI password": "URIPW8",
    "artifact metadata": "ARTMETA9",
    "run error URI password": "ERRPW10",
    "Metadata.extra": "EXTRA11",
}


class Boom(RuntimeError):
    """The failing run's error."""


async def _fill(path: Path) -> None:
    async with open_store(path) as store:
        await ensure_default_stack(store, path / "artifacts")
        await store.register_component(
            "experiment_tracker",
            "mlflow",
            flavor="mlflow",
            configuration={
                "tracking_uri": "postgresql://ml:URIPW1@db:5432/mlflow?sslmode=require",
                "api_token": "TOKEN2",
            },
        )
        async with store.pipeline_run(
            "train",
            run_name="good",
            config={"db_password": "CFGPW3", "dsn": "mysql://u:URIPW4@h/db", "epochs": 3},
        ) as run:
            async with run.step("load", parameters={"api_key": "PARAM5", "rows": 10}) as step:
                await step.log_metadata({"secret": "META6", "accuracy": 0.9})
                await step.produce(
                    "data",
                    uri="s3://AKIA:URIPW8@bucket/data.parquet",
                    metadata={"access_key": "ARTMETA9", "rows": 10},
                )
            await run.log_metadata({"auth_token": "RUNMETA7"})
        with pytest.raises(Boom):
            async with store.pipeline_run("train", run_name="bad"):
                raise Boom("cannot reach postgresql://u:ERRPW10@h/db")
        run_id = uuid.uuid4()
        await store.append(
            f"run-{run_id}",
            [
                RunStarted(
                    run_id=run_id,
                    pipeline_name="train",
                    run_name="extra",
                    started_at=datetime.now(UTC),
                )
            ],
            expected_version="no_stream",
            metadata=Metadata(extra={"auth_token": "EXTRA11", "team": "vision"}),
        )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding a secret in every place one can be."""
    path = tmp_path_factory.mktemp("secrets") / "store"
    anyio.run(_fill, path)
    return path


def _outputs(store: Path, *extra: str) -> str:
    """What every command that can show a secret prints, tables and JSON."""
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, ["--store", str(store), *args, *extra])
        assert 0 == result.exit_code, (args, result.output)
        return result.stdout

    head = json.loads(run("events", "list", "--json"))[-1]["position"]
    texts = [
        run("run", "list", "--json"),
        run("run", "list", "--nl"),
        run("events", "list", "--json"),
        run("events", "list", "--nl"),
        run("events", "tail", "--json", "-n", "100"),
        run("component", "experiment-tracker", "list", "--json"),
        run("component", "experiment-tracker", "describe", "mlflow"),
        run("component", "experiment-tracker", "describe", "mlflow", "--json"),
        run("artifact", "list", "--json"),
        run("artifact", "describe", "train.load.data"),
        run("artifact", "describe", "train.load.data", "--json"),
    ]
    for name in ("good", "bad", "extra"):
        texts.append(run("run", "describe", name))
        texts.append(run("run", "describe", name, "--json"))
    for position in range(1, head + 1):
        texts.append(run("events", "show", str(position)))
        texts.append(run("events", "show", str(position), "--json"))
    return "\n".join(texts)


def test_every_secret_is_masked(store: Path) -> None:
    """No command shows any secret by default; the masks are there instead."""
    shown = _outputs(store)
    leaked = {where: secret for where, secret in SECRETS.items() if secret in shown}
    assert not leaked
    assert MASK in shown
    assert "postgresql://ml:********@db:5432/mlflow?sslmode=require" in shown
    assert "vision" in shown  # Metadata.extra keys that do not look secret stay visible


def test_show_secrets_shows_them_all(store: Path) -> None:
    """--show-secrets, accepted by every one of those commands, shows each secret."""
    shown = _outputs(store, "--show-secrets")
    missing = {where: secret for where, secret in SECRETS.items() if secret not in shown}
    assert not missing


def test_export_keeps_every_secret(store: Path, tmp_path: Path) -> None:
    """An export is a backup: nothing masked."""
    target = tmp_path / "backup.jsonl"
    result = CliRunner().invoke(cli, ["--store", str(store), "export", str(target)])
    assert 0 == result.exit_code, result.output
    text = target.read_text()
    missing = {where: secret for where, secret in SECRETS.items() if secret not in text}
    assert not missing


_PASSWORD = st.text(
    st.characters(codec="utf-8", exclude_characters="/?#", exclude_categories=("Z", "C")),
    min_size=1,
)


@given(user=st.from_regex(r"[a-z]{0,8}", fullmatch=True), password=_PASSWORD)
def test_a_uri_password_never_shows(user: str, password: str) -> None:
    """Whatever the password (with ``@`` or ``:`` in it), only the mask shows."""
    uri = f"postgresql://{user}:{password}@db.internal:5432/metadata"
    masked = f"postgresql://{user}:{MASK}@db.internal:5432/metadata"
    assert masked == mask_uri_credentials(uri)
    text = f"error: cannot connect to {uri} (timeout)"
    assert {"error": f"error: cannot connect to {masked} (timeout)"} == mask_secrets(
        {"error": text}
    )


_SECRET_KEYS = ("password", "DB_PASSWORD", "db_pass", "passwd", "hf_token", "accessToken")
_MORE_SECRET_KEYS = ("aws_secret_access_key", "api-key", "Authorization", "oauth", "signature")


@pytest.mark.parametrize("key", [*_SECRET_KEYS, *_MORE_SECRET_KEYS, "client_secret"])
def test_secret_looking_keys(key: str) -> None:
    """Keys naming a secret are masked."""
    assert {key: MASK} == mask_secrets({key: "value"})


@pytest.mark.parametrize(
    "key", ["author", "num_passes", "bypass_cache", "max_tokens", "tokenizer", "epochs", "uri"]
)
def test_ordinary_keys(key: str) -> None:
    """Keys that merely contain a secret word stay visible."""
    assert {key: "value"} == mask_secrets({key: "value"})


def test_masking_rules() -> None:
    """Keys at any depth, URIs in lists and query parameters; 'author' is not 'auth'."""
    values = {
        "author": "ada",
        "co_authors": ["bob"],
        "Authorization": "Bearer x",
        "nested": {"client_secret": "s", "empty_password": ""},
        "uris": ["https://h/p?token=t&page=2", "https://acct/c?sv=1&sig=abc", "s3://b/k"],
    }
    assert {
        "author": "ada",
        "co_authors": ["bob"],
        "Authorization": MASK,
        "nested": {"client_secret": MASK, "empty_password": ""},
        "uris": [f"https://h/p?token={MASK}&page=2", f"https://acct/c?sv=1&sig={MASK}", "s3://b/k"],
    } == mask_secrets(values)
    assert values is mask_secrets(values, show=True)
