"""The image's smoke test runs what the manifests run: the command lines, users, read-only roots
and volumes are read from the rendered manifests (scripts/image_smoke.py), and these tests hold
the manifests, the Dockerfile and the smoke test to one another.

The smoke test itself (building and running the image) is ``scripts/image.sh all``, a gate of
``scripts/test.sh``."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.k8s.support import OVERLAYS, REPO, build, find, pod_spec, workloads

DOCKERFILE = (REPO / "Dockerfile").read_text()


def _smoke() -> ModuleType:
    spec = importlib.util.spec_from_file_location("image_smoke", REPO / "scripts" / "image_smoke.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["image_smoke"] = module
    spec.loader.exec_module(module)
    return module


smoke = _smoke()


def _dockerfile(instruction: str) -> str:
    return re.findall(rf"^{instruction}\s+(.+)$", DOCKERFILE, re.M)[-1].strip()


def _within(path: str, mounts: list[str]) -> bool:
    return any(Path(path).is_relative_to(m) for m in mounts)


@pytest.mark.parametrize("path", OVERLAYS)
def test_the_smoke_test_runs_every_container_of_the_app_image(path: str) -> None:
    objects = build(path)
    containers = smoke.app_containers(objects)
    assert sorted(containers) == sorted(smoke.SMOKE_WORKLOADS)
    # Every container of the app image is one of them (one per workload), in every kind of workload.
    app = [
        c
        for obj in workloads(objects)
        for c in pod_spec(obj)["containers"]
        if c["image"].startswith(smoke.APP_IMAGE)
    ]
    assert len(app) == len(containers)


@pytest.mark.parametrize("path", OVERLAYS)
def test_the_image_runs_as_every_manifest_does(path: str) -> None:
    user, group = _dockerfile("USER").split(":")
    for container in smoke.app_containers(build(path)).values():
        assert (container.run_as_user, container.run_as_group) == (int(user), int(group)), container.workload
        assert container.read_only_root and not container.allow_privilege_escalation, container.workload
        assert container.capabilities_drop == ["ALL"], container.workload


def test_the_images_default_command_is_the_api_deployments() -> None:
    api = smoke.app_containers(build("overlays/prod"))["Deployment/api"]
    assert json.loads(_dockerfile("CMD")) == api.command
    assert _dockerfile("EXPOSE") == str(api.port)
    assert _dockerfile("WORKDIR") == "/app"


@pytest.mark.parametrize("path", OVERLAYS)
def test_every_path_a_process_writes_is_a_mounted_volume(path: str) -> None:
    """The smoke test gives each process a writable tmpfs only where its manifest mounts a
    volume; these are the paths the processes are configured to write to."""
    objects = build(path)
    containers = smoke.app_containers(objects)
    for container in containers.values():
        config: dict[str, Any] = {}
        for name in container.config_maps:
            config.update(find(objects, "ConfigMap", name)["data"])
        env = {**config, **container.env}
        writes = [env["VAR_DIR"]] if "VAR_DIR" in env else []
        if "--dir" in container.command:  # the live ingest's HLS windows and recordings
            writes.append(container.command[container.command.index("--dir") + 1])
        writes += [env[k] for k in ("PROMETHEUS_MULTIPROC_DIR", "WORKER_HEARTBEAT_FILE") if k in env]
        if "--schedule" in container.command:
            writes.append(container.command[container.command.index("--schedule") + 1])
        for written in writes:
            assert _within(written, container.writable), (container.workload, written, container.writable)
    # gunicorn's default for the metrics directory is /tmp as well, and its heartbeat files go to /dev/shm.
    assert "PROMETHEUS_MULTIPROC_DIR" in containers["Deployment/api"].env


def test_worker_startup_probes_are_what_the_smoke_test_runs() -> None:
    containers = smoke.app_containers(build("overlays/prod"))
    workers = [c for w, c in containers.items() if w.startswith("Deployment/worker")]
    assert len(workers) == 3
    assert all(c.startup_probe and c.startup_probe[:2] == ["sh", "-c"] for c in workers)


def test_resource_fields_resolve_to_whole_cores() -> None:
    api = smoke.app_containers(build("overlays/prod"))["Deployment/api"]
    assert api.env["GUNICORN_WORKERS"] == "2"
    container = {"resources": {"limits": {"cpu": "1500m"}}}
    assert smoke._resource_value(container, {"resource": "limits.cpu", "divisor": "1"}) == "2"


def test_the_dockerfile_base_is_an_argument_with_the_official_default() -> None:
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", DOCKERFILE, re.M)
    stages = re.findall(r"^FROM (\S+) AS (\w+)$", DOCKERFILE, re.M)
    assert stages == [("${BASE_IMAGE}", "build"), ("${BASE_IMAGE}", "runtime")]
    # The runtime stage installs no build tools and keeps no package lists.
    runtime = DOCKERFILE.split("AS runtime", 1)[1]
    assert "--no-install-recommends ffmpeg" in runtime and "rm -rf /var/lib/apt/lists/*" in runtime
    assert not re.search(r"\b(gcc|build-essential|pip install)\b", runtime)


def test_the_image_script_builds_what_the_smoke_test_runs() -> None:
    script = (REPO / "scripts" / "image.sh").read_text()
    assert "image_smoke.py" in script and "--isolation chroot" in script
    test_sh = (REPO / "scripts" / "test.sh").read_text()
    assert "scripts/image.sh all" in test_sh


def test_gunicorn_writes_no_control_socket_on_the_read_only_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """gunicorn (25+) creates a control socket under $HOME by default, which the read-only root
    refuses: the master then logs an error on every start (the smoke test caught it)."""
    import runpy

    # The config file sets this one if it is missing: set here, it is restored afterwards.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.delenv("GUNICORN_CONTROL_SOCKET", raising=False)
    config = runpy.run_path(str(REPO / "gunicorn.conf.py"))
    assert config["control_socket_disable"] is True
    monkeypatch.setenv("GUNICORN_CONTROL_SOCKET", "/tmp/gunicorn.ctl")
    config = runpy.run_path(str(REPO / "gunicorn.conf.py"))
    assert config["control_socket_disable"] is False and config["control_socket"] == "/tmp/gunicorn.ctl"
