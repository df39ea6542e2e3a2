"""The Kubernetes manifests: every overlay builds, every object validates against the real
schemas, and the rules schema validation cannot see hold (bounds, probes, ports, tags, the
source's autoscaling values, queue coverage, least-privilege RBAC, network reachability)."""

from __future__ import annotations

import copy
import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from django.urls import Resolver404, resolve
from kombu.transport.redis import Channel

from bench.autoscaling.hpa import parse_quantity_milli
from tests.k8s.support import (
    BUILDS,
    KUBERNETES_VERSION,
    OVERLAYS,
    REPO,
    build,
    find,
    is_custom,
    of_kind,
    pod_spec,
    run_probe,
    validate_custom,
    workloads,
)
from videoplatform.celery import QUEUE_NAMES, app
from videoplatform.jobs import heartbeat
from videoplatform.metrics import REQUESTS, request_kind

LATEST_KUBERNETES = kubernetes_validate.utils.latest_version()


def _validate_builtin(obj: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("path", BUILDS)
@pytest.mark.parametrize("version", sorted({KUBERNETES_VERSION, LATEST_KUBERNETES}))
def test_every_object_validates_strictly(path: str, version: str) -> None:
    objects = build(path)
    assert objects, f"{path} renders nothing"
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            if is_custom(obj):
                validate_custom(obj)
            else:
                _validate_builtin(obj, version)
        except (jsonschema.ValidationError, kubernetes_validate.utils.ValidationError) as exc:
            pytest.fail(f"{path}: {name} is invalid at {list(exc.path)}: {exc.message}")
        except kubernetes_validate.utils.SchemaNotFoundError as exc:
            pytest.fail(f"{path}: {name}: {exc.message}")


def test_validation_rejects_what_the_api_server_would() -> None:
    objects = build("overlays/prod")
    hpa = copy.deepcopy(find(objects, "HorizontalPodAutoscaler", "api"))
    hpa["spec"]["maxReplica"] = 50  # a typo: strict validation rejects unknown fields
    with pytest.raises(kubernetes_validate.utils.ValidationError):
        _validate_builtin(hpa, KUBERNETES_VERSION)
    scaled = copy.deepcopy(find(objects, "ScaledObject", "worker-transcoding"))
    scaled["spec"]["advanced"]["scalingModifier"] = scaled["spec"]["advanced"].pop("scalingModifiers")
    with pytest.raises(jsonschema.ValidationError):
        validate_custom(scaled)
    scaled = copy.deepcopy(find(objects, "ScaledObject", "worker-transcoding"))
    scaled["spec"]["triggers"][0]["metadata"]["listLength"] = 2  # metadata values are strings
    with pytest.raises(jsonschema.ValidationError):
        validate_custom(scaled)


# --- The API's autoscaling -----------------------------------------------------------------------

SOURCE_HPA_SPEC = {
    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"},
    "minReplicas": 3,
    "maxReplicas": 50,
    "metrics": [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
        },
        {
            "type": "Resource",
            "resource": {"name": "memory", "target": {"type": "Utilization", "averageUtilization": 80}},
        },
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "http_requests_per_second"},
                "target": {"type": "AverageValue", "averageValue": "1000"},
            },
        },
    ],
    "behavior": {
        "scaleUp": {
            "stabilizationWindowSeconds": 60,
            "policies": [
                {"type": "Percent", "value": 50, "periodSeconds": 60},
                {"type": "Pods", "value": 2, "periodSeconds": 60},
            ],
            "selectPolicy": "Max",
        },
        "scaleDown": {
            "stabilizationWindowSeconds": 300,
            "policies": [
                {"type": "Percent", "value": 10, "periodSeconds": 60},
                {"type": "Pods", "value": 1, "periodSeconds": 60},
            ],
            "selectPolicy": "Min",
        },
    },
}


def test_production_hpa_is_the_sources() -> None:
    hpa = find(build("overlays/prod"), "HorizontalPodAutoscaler", "api")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"] == SOURCE_HPA_SPEC


def _scaling_rules(objects: list[dict[str, Any]]) -> list[tuple[str, int, int, dict[str, Any]]]:
    """(name, min, max, behavior) of every HPA and every ScaledObject's generated HPA."""
    found = []
    for hpa in of_kind(objects, "HorizontalPodAutoscaler"):
        spec = hpa["spec"]
        found.append(
            (hpa["metadata"]["name"], spec.get("minReplicas", 1), spec["maxReplicas"], spec.get("behavior"))
        )
    for scaled in of_kind(objects, "ScaledObject"):
        spec = scaled["spec"]
        behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior")
        found.append(
            (
                scaled["metadata"]["name"],
                spec.get("minReplicaCount", 0),
                spec.get("maxReplicaCount", 100),
                behavior,
            )
        )
    return found


@pytest.mark.parametrize("path", OVERLAYS)
def test_autoscaler_bounds_and_behaviour_are_legal(path: str) -> None:
    rules = _scaling_rules(build(path))
    assert len(rules) == 4
    for name, low, high, behavior in rules:
        assert 0 <= low <= high, f"{name}: min {low} > max {high}"
        for direction in ("scaleUp", "scaleDown"):
            if not behavior or direction not in behavior:
                continue
            rule = behavior[direction]
            assert 0 <= rule.get("stabilizationWindowSeconds", 0) <= 3600, f"{name} {direction} window"
            assert rule.get("selectPolicy", "Max") in ("Max", "Min", "Disabled"), f"{name} {direction}"
            assert rule["policies"], f"{name} {direction}: a rule needs a policy"
            for policy in rule["policies"]:
                assert 0 < policy["periodSeconds"] <= 1800, f"{name} {direction} period"
                assert policy["type"] in ("Pods", "Percent") and policy["value"] > 0


def _patch_bounds(cronjob: dict[str, Any]) -> tuple[str, dict[str, int]]:
    argv = pod_spec(cronjob)["containers"][0]["command"]
    assert argv[:3] == ["kubectl", "patch", "horizontalpodautoscaler"]
    return argv[3], json.loads(argv[argv.index("--patch") + 1])["spec"]


def test_night_schedule_sets_both_bounds_in_an_explicit_time_zone() -> None:
    objects = build("overlays/prod")
    hpa = find(objects, "HorizontalPodAutoscaler", "api")
    seen = {}
    for name in ("api-hpa-night", "api-hpa-day"):
        cron = find(objects, "CronJob", name)
        assert cron["spec"]["timeZone"] == "Asia/Tokyo"
        target, bounds = _patch_bounds(cron)
        assert target == hpa["metadata"]["name"]
        assert bounds["minReplicas"] <= bounds["maxReplicas"]
        seen[cron["spec"]["schedule"]] = (bounds["minReplicas"], bounds["maxReplicas"])
    assert seen == {"0 1 * * *": (2, 10), "0 6 * * *": (5, 50)}


def test_schedule_may_patch_only_this_hpa() -> None:
    objects = build("overlays/prod")
    role = find(objects, "Role", "api-hpa-scheduler")
    assert role["rules"] == [
        {
            "apiGroups": ["autoscaling"],
            "resources": ["horizontalpodautoscalers"],
            "resourceNames": ["api"],
            "verbs": ["get", "patch"],
        }
    ]
    binding = find(objects, "RoleBinding", "api-hpa-scheduler")
    assert binding["roleRef"]["name"] == "api-hpa-scheduler"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "api-hpa-scheduler", "namespace": "videoplatform"}
    ]
    for name in ("api-hpa-night", "api-hpa-day"):
        assert pod_spec(find(objects, "CronJob", name))["serviceAccountName"] == "api-hpa-scheduler"
    # Nothing else runs with that account, and no other Role or ClusterRole is shipped.
    others = [w for w in workloads(objects) if pod_spec(w).get("serviceAccountName") == "api-hpa-scheduler"]
    assert {w["metadata"]["name"] for w in others} == {"api-hpa-night", "api-hpa-day"}
    assert len(of_kind(objects, "Role")) == 1 and not of_kind(objects, "ClusterRole")


# --- The API pods ------------------------------------------------------------------------------------


def _api_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return pod_spec(find(objects, "Deployment", "api"))["containers"][0]


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}


@pytest.mark.parametrize("path", OVERLAYS)
def test_probes_hit_paths_the_app_serves(path: str) -> None:
    container = _api_container(build(path))
    probes = {
        kind: container[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes["livenessProbe"]["path"] == "/health"
    assert probes["readinessProbe"]["path"] == "/ready"
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    for kind, probe in probes.items():
        try:
            match = resolve(probe["path"])
        except Resolver404:
            pytest.fail(f"{kind} path {probe['path']} is not in the URL conf")
        assert match.url_name in ("health", "ready"), f"{kind} must use a probe endpoint"
        assert probe["port"] in ports, f"{kind} names an undeclared port"


def _gunicorn_bind(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("HOST", "PORT"):
        if name in env:
            monkeypatch.setenv(name, env[name])
        else:
            monkeypatch.delenv(name, raising=False)
    namespace: dict[str, Any] = {"__file__": str(REPO / "gunicorn.conf.py")}
    exec(compile((REPO / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), namespace)
    return str(namespace["bind"])


@pytest.mark.parametrize("path", OVERLAYS)
def test_ports_match_gunicorns_bind(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    objects = build(path)
    container = _api_container(objects)
    assert container["command"][:3] == ["gunicorn", "-c", "gunicorn.conf.py"]
    bind = _gunicorn_bind(_env(container), monkeypatch)
    host, _, port = bind.rpartition(":")
    assert host == "0.0.0.0", "gunicorn must listen on every interface in a pod"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": int(port)}
    service = find(objects, "Service", "api")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["sessionAffinity"] == "None"
    assert service["spec"]["ports"] == [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "http"}]
    annotations = service["metadata"]["annotations"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-type"] == "nlb"
    assert (
        annotations["service.beta.kubernetes.io/aws-load-balancer-cross-zone-load-balancing-enabled"]
        == "true"
    )
    pod_annotations = find(objects, "Deployment", "api")["spec"]["template"]["metadata"]["annotations"]
    assert pod_annotations["prometheus.io/port"] == port
    assert resolve(pod_annotations["prometheus.io/path"]).url_name == "metrics"


@pytest.mark.parametrize("path", OVERLAYS)
def test_shutdown_outlasts_gunicorns_graceful_timeout(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    objects = build(path)
    deployment = find(objects, "Deployment", "api")
    container = _api_container(objects)
    env = _env(container)
    monkeypatch.setenv("GUNICORN_GRACEFUL_TIMEOUT", env.get("GUNICORN_GRACEFUL_TIMEOUT", "25"))
    namespace: dict[str, Any] = {}
    exec(compile((REPO / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), namespace)
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > pre_stop + namespace["graceful_timeout"]


def _field_ref_value(container: dict[str, Any], name: str) -> int:
    """The value the kubelet gives an env variable read from the container's own resources: the
    quantity divided by the divisor, rounded up (a CPU limit of 1500m is 2 cores)."""
    item = next(item for item in container.get("env", []) if item["name"] == name)
    ref = item["valueFrom"]["resourceFieldRef"]
    assert ref.get("containerName", container["name"]) == container["name"]
    section, _, resource = ref["resource"].partition(".")
    quantity = container["resources"][section][resource]
    return math.ceil(parse_quantity_milli(quantity) / parse_quantity_milli(ref.get("divisor", "1")))


def _gunicorn_config(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    namespace: dict[str, Any] = {"__file__": str(REPO / "gunicorn.conf.py")}
    exec(compile((REPO / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("path", OVERLAYS)
def test_gunicorn_runs_one_worker_per_core_of_the_pod_and_two_threads(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = _api_container(build(path))
    resources = container["resources"]
    limit = parse_quantity_milli(resources["limits"]["cpu"])
    assert parse_quantity_milli(resources["requests"]["cpu"]) <= limit
    # gunicorn's default would count the node's cores: the count comes from the pod's CPU limit.
    workers = _field_ref_value(container, "GUNICORN_WORKERS")
    assert workers == math.ceil(limit / 1000)
    env = {**_env(container), "GUNICORN_WORKERS": str(workers)}
    config = _gunicorn_config(env, monkeypatch)
    assert (config["workers"], config["threads"], config["worker_class"]) == (workers, 2, "gthread")
    if path == "overlays/prod":
        # The layout docs/performance.md measured (2 workers x 2 threads on 2 cores), which the
        # per-pod capacity in bench/autoscaling and docs/deployment.md stands for.
        assert (limit, config["workers"], config["threads"]) == (2000, 2, 2)
        assert parse_quantity_milli(resources["requests"]["cpu"]) == 1000  # what the nodes are packed by


@pytest.mark.parametrize("path", OVERLAYS)
def test_pods_run_locked_down(path: str) -> None:
    for obj in workloads(build(path)):
        spec = pod_spec(obj)
        name = obj["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        mounts = set()
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert "memory" in container["resources"]["requests"], name
            mounts |= {mount["mountPath"] for mount in container.get("volumeMounts", [])}
            env = {**_env(container)}
            # Every directory the app writes to is a mounted volume under a read-only root.
            for variable in ("PROMETHEUS_MULTIPROC_DIR", "HOME", "WORKER_HEARTBEAT_FILE"):
                if variable in env:
                    assert any(env[variable].startswith(m) for m in mounts), f"{name}: {variable}"
        if obj["kind"] != "StatefulSet" and obj["metadata"]["name"] != "pgbouncer":
            assert "/tmp" in mounts, f"{name}: Python and gunicorn need a writable /tmp"


def test_api_metrics_directory_is_a_volume() -> None:
    container = _api_container(build("overlays/prod"))
    metrics_dir = _env(container)["PROMETHEUS_MULTIPROC_DIR"]
    assert metrics_dir in {mount["mountPath"] for mount in container["volumeMounts"]}


@pytest.mark.parametrize("path", OVERLAYS)
def test_images_are_pinned(path: str) -> None:
    for obj in workloads(build(path)):
        for container in pod_spec(obj)["containers"] + pod_spec(obj).get("initContainers", []):
            image = container["image"]
            assert re.fullmatch(r"[^:@]+(:[\w][\w.-]{0,127})?(@sha256:[0-9a-f]{64})?", image), image
            tag = image.split("@")[0].rpartition(":")[2] if ":" in image.split("/")[-1] else ""
            assert tag or "@sha256:" in image, f"{image} has no tag"
            assert tag != "latest", f"{image} uses latest"


def test_api_spreads_and_survives_disruption() -> None:
    objects = build("overlays/prod")
    spec = pod_spec(find(objects, "Deployment", "api"))
    keys = {c["topologyKey"] for c in spec["topologySpreadConstraints"]}
    assert "topology.kubernetes.io/zone" in keys
    pdb = find(objects, "PodDisruptionBudget", "api")
    selector = pdb["spec"]["selector"]["matchLabels"]
    assert (
        selector.items()
        <= find(objects, "Deployment", "api")["spec"]["template"]["metadata"]["labels"].items()
    )
    assert "replicas" not in find(objects, "Deployment", "api")["spec"], "the HPA owns the replica count"


def test_migrations_run_as_a_job_with_the_app_image() -> None:
    objects = build("overlays/prod")
    job = find(objects, "Job", "migrate")
    container = pod_spec(job)["containers"][0]
    assert container["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert container["image"] == _api_container(objects)["image"]
    assert pod_spec(job)["restartPolicy"] == "Never"


# --- Workers --------------------------------------------------------------------------------------


def _worker_queues(deployment: dict[str, Any]) -> list[str]:
    argv = pod_spec(deployment)["containers"][0]["command"]
    return argv[argv.index("-Q") + 1].split(",")


def _expected_lists(queues: list[str]) -> set[str]:
    channel = Channel.__new__(Channel)  # only the naming attributes are needed
    return {channel._q_for_pri(queue, step) for queue in queues for step in Channel.priority_steps}


@pytest.mark.parametrize("path", OVERLAYS)
def test_every_queue_has_exactly_one_worker_group(path: str) -> None:
    objects = build(path)
    workers = [d for d in of_kind(objects, "Deployment") if d["metadata"]["name"].startswith("worker-")]
    consumed = [queue for d in workers for queue in _worker_queues(d)]
    assert sorted(consumed) == sorted(QUEUE_NAMES)
    routed = {route["queue"] for route in app.conf.task_routes.values()} | {app.conf.task_default_queue}
    assert routed <= set(consumed)
    transcoding = find(objects, "Deployment", "worker-transcoding")
    argv = pod_spec(transcoding)["containers"][0]["command"]
    assert _worker_queues(transcoding) == ["transcoding"]
    assert argv[argv.index("-c") + 1] == "1" and argv[argv.index("-O") + 1] == "fair"


@pytest.mark.parametrize("path", OVERLAYS)
def test_scaled_objects_count_every_priority_list(path: str) -> None:
    objects = build(path)
    for deployment in (
        d for d in of_kind(objects, "Deployment") if d["metadata"]["name"].startswith("worker-")
    ):
        name = deployment["metadata"]["name"]
        scaled = find(objects, "ScaledObject", name)
        assert scaled["spec"]["scaleTargetRef"]["name"] == name
        triggers = scaled["spec"]["triggers"]
        lists = [t["metadata"]["listName"] for t in triggers]
        assert sorted(lists) == sorted(_expected_lists(_worker_queues(deployment))), name
        assert all(t["type"] == "redis" for t in triggers)
        # The HPA sees the sum of every list, not the longest one.
        modifiers = scaled["spec"]["advanced"]["scalingModifiers"]
        assert sorted(re.split(r"\s*\+\s*", modifiers["formula"])) == sorted(t["name"] for t in triggers)
        assert modifiers["metricType"] == "AverageValue" and int(modifiers["target"]) > 0
        container = pod_spec(deployment)["containers"][0]
        assert any(ref.get("configMapRef") for ref in container["envFrom"]), "KEDA reads the address from env"


def _worker_deployments(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in of_kind(objects, "Deployment") if d["metadata"]["name"].startswith("worker-")]


@pytest.mark.parametrize("path", OVERLAYS)
def test_workers_are_restarted_when_their_heartbeat_goes_stale(path: str, tmp_path: Path) -> None:
    workers = _worker_deployments(build(path))
    assert len(workers) == 3
    for deployment in workers:
        name = deployment["metadata"]["name"]
        container = pod_spec(deployment)["containers"][0]
        env = _env(container)
        heartbeat_file = env[heartbeat.ENV_VAR]
        mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
        assert str(Path(heartbeat_file).parent) in mounts, f"{name}: the file must be writable"
        liveness, startup = container["livenessProbe"], container["startupProbe"]
        assert liveness["exec"] == startup["exec"], name
        # A restart after at most a few minutes without a loop turn, and a start-up allowance of
        # several minutes (Django, the broker) before liveness counts.
        assert 60 <= liveness["periodSeconds"] * liveness["failureThreshold"] <= 300, name
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 180, name
        assert liveness["timeoutSeconds"] >= 2 and startup["timeoutSeconds"] >= 2, name

        # The probe itself, run against a file of each age.
        target = tmp_path / name
        assert run_probe(liveness, target) != 0, f"{name}: no file yet must fail"
        target.touch()
        assert run_probe(liveness, target) == 0, f"{name}: a fresh file must pass"
        # A few missed touches are tolerated...
        now = time.time()
        os.utime(target, (now - 5 * heartbeat.INTERVAL, now - 5 * heartbeat.INTERVAL))
        assert run_probe(liveness, target) == 0, f"{name}: {5 * heartbeat.INTERVAL:.0f} s must pass"
        # ...a minute of them is not.
        os.utime(target, (now - 61, now - 61))
        assert run_probe(liveness, target) != 0, f"{name}: a file 61 s old must fail"


def test_beat_is_not_probed_with_a_heartbeat_it_never_writes() -> None:
    # beat runs no consumer, so nothing would touch the file: such a probe would restart it forever.
    beat = pod_spec(find(build("overlays/prod"), "Deployment", "beat"))["containers"][0]
    assert heartbeat.ENV_VAR not in _env(beat)
    for kind in ("startupProbe", "livenessProbe"):
        assert heartbeat.ENV_VAR not in json.dumps(beat.get(kind, {})), kind


def test_broker_address_for_keda_is_fully_qualified() -> None:
    for path in OVERLAYS:
        objects = build(path)
        namespace = find(objects, "Deployment", "api")["metadata"]["namespace"]
        config = next(
            c
            for c in of_kind(objects, "ConfigMap")
            if c["metadata"]["name"].startswith("videoplatform-config")
        )
        host, _, port = config["data"]["REDIS_BROKER_ADDRESS"].rpartition(":")
        assert host == f"redis-broker.{namespace}.svc.cluster.local" and port == "6379", path


def test_beat_runs_exactly_once() -> None:
    beat = find(build("overlays/prod"), "Deployment", "beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    assert "beat" in pod_spec(beat)["containers"][0]["command"]


# --- Data plane and network -----------------------------------------------------------------------


def test_pgbouncer_uses_the_sources_pool_settings() -> None:
    objects = build("overlays/prod")
    config = next(c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"].startswith("pgbouncer"))
    ini = dict(
        re.findall(r"^(\w+)\s*=\s*(.*?)\s*$", config["data"]["pgbouncer.ini"].split("[pgbouncer]")[1], re.M)
    )
    assert ini["pool_mode"] == "transaction"
    assert (ini["max_client_conn"], ini["default_pool_size"]) == ("1000", "25")
    assert (ini["reserve_pool_size"], ini["reserve_pool_timeout"]) == ("5", "3")
    assert ini["listen_port"] == "6432"
    service = find(objects, "Service", "pgbouncer")
    assert service["spec"]["ports"][0]["port"] == 6432


def _allowed_components(policy: dict[str, Any]) -> set[str]:
    components: set[str] = set()
    for rule in policy["spec"]["ingress"]:
        for peer in rule["from"]:
            if "namespaceSelector" in peer:
                continue
            for expression in peer["podSelector"]["matchExpressions"]:
                if expression["key"] == "app.kubernetes.io/component":
                    components |= set(expression["values"])
    return components


def test_only_the_application_reaches_pgbouncer_and_redis() -> None:
    objects = build("overlays/prod")
    policies = of_kind(objects, "NetworkPolicy")
    deny = find(objects, "NetworkPolicy", "default-deny-ingress")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    pgbouncer = find(objects, "NetworkPolicy", "pgbouncer-ingress")
    assert _allowed_components(pgbouncer) == {"api", "worker", "beat", "migrate"}
    redis = find(objects, "NetworkPolicy", "redis-broker-ingress")
    assert _allowed_components(redis) == {"api", "worker", "beat"}
    keda = [peer for rule in redis["spec"]["ingress"] for peer in rule["from"] if "namespaceSelector" in peer]
    assert keda and keda[0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "keda"}
    # Each policy selects pods that exist, and every allowed component labels real pods.
    labels = [
        w["spec"]["template"]["metadata"]["labels"] for w in workloads(objects) if w["kind"] != "CronJob"
    ]
    present = {label["app.kubernetes.io/component"] for label in labels}
    assert {"api", "worker", "beat", "migrate", "pgbouncer", "redis-broker"} <= present
    for policy in policies:
        selector = policy["spec"]["podSelector"].get("matchLabels", {})
        assert not selector or any(selector.items() <= label.items() for label in labels), policy["metadata"][
            "name"
        ]


def test_prometheus_adapter_serves_the_hpa_metric_from_the_apps_counter() -> None:
    objects = build("monitoring")
    config = find(objects, "ConfigMap", "prometheus-adapter")
    rule = yaml.safe_load(config["data"]["config.yaml"])["rules"][0]
    counter = f"{REQUESTS._name}_total"
    assert rule["seriesQuery"].startswith(counter + "{")
    assert re.fullmatch(rule["name"]["matches"], counter)
    hpa = find(build("overlays/prod"), "HorizontalPodAutoscaler", "api")
    pods_metric = next(m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods")
    assert rule["name"]["as"] == pods_metric
    excluded = re.search(r'kind!~"([^"]+)"', rule["metricsQuery"]).group(1).split("|")
    kinds = {request_kind(p) for p in ("/health", "/ready", "/metrics", "/api/videos", "/admin/", "/")}
    assert set(excluded) == {"probe", "metrics"} and set(excluded) < kinds
    assert "rate(" in rule["metricsQuery"] and "by (<<.GroupBy>>)" in rule["metricsQuery"]


def test_dockerfile_runs_as_the_user_the_pods_expect() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    user = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)[-1]
    assert user.split(":")[0] == str(
        pod_spec(find(build("overlays/prod"), "Deployment", "api"))["securityContext"]["runAsUser"]
    )
    assert "collectstatic --noinput" in dockerfile
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", dockerfile, re.M)
    assert re.findall(r"^FROM (\S+)", dockerfile, re.M) == ["${BASE_IMAGE}", "${BASE_IMAGE}"]
    assert Path(REPO / ".dockerignore").exists()
