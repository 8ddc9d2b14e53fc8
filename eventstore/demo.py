"""An example async orchestrator: a small training DAG recorded through the write API.

The DAG (six steps; ``featurize_*`` run concurrently; ``train`` fails once and
is retried; the lineage is a diamond from ``split`` to ``evaluate``)::

    load_data -> split -+-> featurize_train -> train -+-> evaluate
                        +-> featurize_test -----------+

Each step writes a small JSON artifact under the artifact store's path, so the
recorded URIs, sizes and content hashes are real.

Run it with ``python -m eventstore.demo`` (or ``metaledger demo``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio

from .defaults import ensure_default_stack
from .runs import PipelineRun, StepRun
from .store import EventStore, open_store

__all__ = ["DEMO_PIPELINE", "run_demo"]

#: The demo pipeline's name.
DEMO_PIPELINE = "training_pipeline"


class FlakyStepError(RuntimeError):
    """Raised by the demo's ``train`` step on its first attempt, to show a retry."""


async def _artifact_root(store: EventStore, fallback: Path) -> Path:
    workspace = await store.workspace()
    if workspace.active_stack_id is not None:
        stack = workspace.stacks[workspace.active_stack_id]
        store_id = stack.components.get("artifact_store")
        if store_id is not None:
            path = workspace.components[store_id].configuration.get("path")
            if isinstance(path, str) and path:
                return Path(path)
    return fallback


async def _write(
    step: StepRun, root: Path, output: str, payload: Any, artifact_type: str = "DataArtifact"
) -> UUID:
    run_dir = root / str(step.run.run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    body = json.dumps(payload, sort_keys=True).encode()
    target = run_dir / f"{step.name}.{output}.json"
    await anyio.Path(target).write_bytes(body)
    return await step.produce(
        output,
        uri=target.as_uri(),
        artifact_type=artifact_type,
        data_type="builtins.dict",
        materializer="metaledger.demo.JsonMaterializer",
        content_hash=hashlib.sha256(body).hexdigest(),
        size_bytes=len(body),
    )


async def run_demo(
    store: EventStore, *, artifact_root: Path | None = None, run_name: str | None = None
) -> UUID:
    """Record one run of the demo DAG on the active stack; return the run id.

    Without ``run_name`` the run gets a unique generated name, so the demo can
    run any number of times; a given ``run_name`` must be free (RunNameTakenError).
    """
    root = await _artifact_root(store, artifact_root or Path("artifacts"))
    async with store.pipeline_run(
        DEMO_PIPELINE,
        run_name=run_name,
        config={"epochs": 3, "learning_rate": 0.01},
        tags=["demo"],
    ) as run:
        async with run.step("load_data", parameters={"rows": 1000}) as step:
            raw = await _write(step, root, "raw", {"rows": list(range(10))})
        async with run.step("split", upstream_steps=["load_data"]) as step:
            await step.consume("raw", raw)
            train_set = await _write(step, root, "train", {"rows": list(range(8))})
            test_set = await _write(step, root, "test", {"rows": [8, 9]})

        features: dict[str, UUID] = {}

        async def featurize(split: str, source: UUID) -> None:
            async with run.step(f"featurize_{split}", upstream_steps=["split"]) as step:
                await step.consume("dataset", source)
                features[split] = await _write(step, root, "features", {"split": split})

        async with anyio.create_task_group() as group:
            group.start_soon(featurize, "train", train_set)
            group.start_soon(featurize, "test", test_set)

        model = await _train_with_retry(run, root, features["train"])
        async with run.step("evaluate", upstream_steps=["train", "featurize_test"]) as step:
            await step.consume("model", model)
            await step.consume("test_features", features["test"])
            await _write(step, root, "metrics", {"accuracy": 0.93}, "DataAnalysisArtifact")
            await step.log_metadata({"accuracy": 0.93, "f1": 0.91})
        return run.run_id


async def _train_with_retry(run: PipelineRun, root: Path, features: UUID) -> UUID:
    for attempt in (1, 2):
        try:
            async with run.step(
                "train",
                upstream_steps=["featurize_train"],
                parameters={"epochs": 3, "attempt": attempt},
            ) as step:
                await step.consume("features", features)
                if attempt == 1:
                    raise FlakyStepError("the GPU went away (simulated); retrying")
                model = await _write(step, root, "model", {"weights": [0.1, 0.2]}, "ModelArtifact")
                await step.log_metadata({"loss": 0.12})
                return model
        except FlakyStepError:
            continue
    raise AssertionError("unreachable: the second attempt succeeds")


async def _main() -> None:
    async with open_store() as store:
        base = Path(store.location.path) if store.location.path else Path.cwd()
        await ensure_default_stack(store, base / "artifacts")
        run_id = await run_demo(store)
        print(f"store: {store.location.display}")
        print(f"recorded run {run_id}:")
        async for recorded in store.read_stream(f"run-{run_id}"):
            event = recorded.event
            detail = {
                k: v
                for k, v in json.loads(json.dumps(_builtins(event), default=str)).items()
                if k in ("step_name", "status", "output_name", "input_name", "error", "values")
            }
            print(f"  {recorded.position:>6}  {recorded.type:<20} {json.dumps(detail)}")
        report = await store.verify()
        print(f"verify: ok={report.ok} events={report.events}")


def _builtins(event: object) -> Any:
    import msgspec

    return msgspec.to_builtins(event)


if __name__ == "__main__":
    from .logs import configure_logging

    configure_logging()
    anyio.run(_main)
