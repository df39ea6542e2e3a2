"""Building and validating the Kubernetes manifests offline: kustomize (through kubectl),
the Kubernetes JSON schemas bundled by kubernetes-validate, and KEDA's vendored CRD schema."""

from __future__ import annotations

import copy
import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
OVERLAYS = ("overlays/dev", "overlays/prod")
BUILDS = (*OVERLAYS, "base", "monitoring")
KEDA_CRD = K8S / "schemas" / "keda.sh_scaledobjects.yaml"
# The Kubernetes version whose schemas the objects must satisfy (the oldest we support: the
# preStop "sleep" action and CronJob timeZone need 1.30).
KUBERNETES_VERSION = "1.30.0"
INSTALL_HINT = "run k8s/tools/install.sh"


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip(f"kubectl (which bundles kustomize) is not installed: {INSTALL_HINT}")
    return path


@functools.cache
def _build(path: str) -> str:
    result = subprocess.run(
        [kubectl(), "kustomize", str(K8S / path)], capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {path} failed:\n{result.stderr}")
    return result.stdout


def build(path: str) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize k8s/<path>`` renders (a fresh copy on every call)."""
    return [doc for doc in yaml.safe_load_all(_build(path)) if doc]


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(f"no {kind}/{name}")


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    return spec["template"]["spec"]


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "CronJob")


def workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] in WORKLOAD_KINDS]


def _strict(schema: Any) -> Any:
    """Reject unknown fields the way ``kubernetes-validate --strict`` does for built-in kinds.

    The API server would silently prune them from a custom resource, so a misspelt field would
    vanish without an error; here it fails. ``metadata`` stays open (the CRD leaves it so).
    """
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [_strict(item) for item in schema]
    return schema


@functools.cache
def _keda_schemas() -> dict[str, dict[str, Any]]:
    crds = [doc for doc in yaml.safe_load_all(KEDA_CRD.read_text()) if doc]
    schemas = {}
    for crd in crds:
        group = crd["spec"]["group"]
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
            schema["properties"]["metadata"] = {"type": "object"}
            schemas[f"{group}/{version['name']}:{kind}"] = _strict(schema)
    return schemas


def validate_custom(obj: dict[str, Any]) -> None:
    """Validate a KEDA object against the vendored CRD schema (raises ValidationError)."""
    key = f"{obj['apiVersion']}:{obj['kind']}"
    schemas = _keda_schemas()
    if key not in schemas:
        raise AssertionError(f"no vendored schema for {key}")
    jsonschema.Draft202012Validator(schemas[key]).validate(obj)


def is_custom(obj: dict[str, Any]) -> bool:
    return obj["apiVersion"].split("/")[0].endswith("keda.sh")


def run_probe(probe: dict[str, Any], heartbeat_file: Path) -> int:
    """Runs an exec probe's command here, as the kubelet would in a worker container whose
    ``WORKER_HEARTBEAT_FILE`` is ``heartbeat_file``; its exit status (0: the probe passes)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "WORKER_HEARTBEAT_FILE": str(heartbeat_file)}
    return subprocess.run(probe["exec"]["command"], env=env, timeout=10, check=False).returncode
