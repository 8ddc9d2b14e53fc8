"""The flavors metaledger knows for each built-in component type, as ZenML lists them.

A component's flavor says which implementation it configures (``local``,
``kubernetes``, ``s3``...). Registering a component of a flavor that is
neither built in nor registered as a custom flavor (``flavor.registered``) is
refused with a suggestion, so a typo (``k8s``) never becomes a component.
Component types outside :data:`~eventstore.events.COMPONENT_TYPES` (a newer
orchestrator's) have no built-in flavors and accept any flavor.
"""

from __future__ import annotations

from .events import COMPONENT_TYPES

__all__ = ["BUILTIN_FLAVORS", "FLAVOR_ALIASES", "builtin_flavors"]

#: Component type -> its built-in flavors: ZenML's own and its integrations'.
BUILTIN_FLAVORS: dict[str, tuple[str, ...]] = {
    "orchestrator": (
        "local",
        "local_docker",
        "kubernetes",
        "kubeflow",
        "airflow",
        "tekton",
        "sagemaker",
        "vertex",
        "azureml",
        "databricks",
        "lightning",
        "hyperai",
        "skypilot_aws",
        "skypilot_gcp",
        "skypilot_azure",
        "skypilot_lambda",
    ),
    "artifact_store": ("local", "s3", "gcp", "azure"),
    "metadata_store": ("sqlite", "postgresql", "mysql"),
    "container_registry": ("default", "dockerhub", "aws", "gcp", "azure", "github"),
    "step_operator": ("sagemaker", "vertex", "azureml", "kubernetes", "modal", "spark"),
    "experiment_tracker": ("mlflow", "wandb", "neptune", "comet", "vertex"),
    "model_deployer": ("mlflow", "seldon", "bentoml", "huggingface", "databricks", "vllm"),
    "model_registry": ("mlflow",),
    "alerter": ("slack", "discord"),
    "annotator": ("label_studio", "argilla", "pigeon", "prodigy"),
    "data_validator": ("great_expectations", "deepchecks", "evidently", "whylogs"),
    "feature_store": ("feast",),
    "image_builder": ("local", "kaniko", "gcp", "aws"),
}

assert set(BUILTIN_FLAVORS) == set(COMPONENT_TYPES)

#: Names people type for a flavor -> the flavor's name, offered as "did you mean".
FLAVOR_ALIASES: dict[str, str] = {
    "k8s": "kubernetes",
    "kube": "kubernetes",
    "docker": "local_docker",
    "gcs": "gcp",
    "google": "gcp",
    "aws": "s3",
    "blob": "azure",
    "postgres": "postgresql",
    "pg": "postgresql",
    "w&b": "wandb",
    "labelstudio": "label_studio",
    "ge": "great_expectations",
}


def builtin_flavors(component_type: str) -> tuple[str, ...] | None:
    """The built-in flavors of a type, or None for a type outside the catalogue."""
    return BUILTIN_FLAVORS.get(component_type)
