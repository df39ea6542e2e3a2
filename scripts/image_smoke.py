# ruff: noqa: S603, S607 - it runs fixed tools (buildah, unshare, psql) found on PATH, as root
"""Smoke test of the production image: what the Kubernetes manifests run, run from inside the image.

The command lines, environment, user, read-only root and writable volumes of every container
that runs the application image are read from the rendered production overlay
(``kubectl kustomize k8s/overlays/prod``): the manifests are the one source of truth, and this
script runs exactly what they would. Each container runs in its own mount and PID namespace,
chrooted into the image's root filesystem mounted read-only, with a fresh tmpfs for each volume
the manifest mounts (its emptyDirs), as the manifest's user with no capabilities and no new
privileges. The network is the host's: the real PostgreSQL (through PgBouncer, as in
production), Redis and the S3-compatible server of ``scripts/services.sh`` on loopback.

Checks, in order: ffmpeg's version; the read-only root (writes fail everywhere but the mounted
volumes); the migration Job; ``check --deploy`` with production settings; the API (gunicorn)
answering /health, /ready, an API read and /metrics; beat starting; the three Celery workers
starting (their heartbeat probe, run as the manifest runs it); a real transcode by the
transcoding worker; every process running as uid 10001.

    scripts/image.sh smoke        (builds nothing; run scripts/image.sh build first)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OVERLAY = "k8s/overlays/prod"
# The image every application container runs (the overlays only change its tag).
APP_IMAGE = "ghcr.io/videoplatform/api"
# The workloads that run the application image, all of which the smoke test runs.
SMOKE_WORKLOADS = (
    "Job/migrate",
    "Deployment/api",
    "Deployment/beat",
    "Deployment/worker-transcoding",
    "Deployment/worker-messaging",
    "Deployment/worker-background",
    "StatefulSet/live-ingest",
)
# Loopback ports for the ingest (the development ingest may hold 1935 and 8935).
INGEST_RTMP_PORT, INGEST_HTTP_PORT = 19435, 18935
MOUNT_BASE = Path("/run/videoplatform-image-smoke")
HOST = "api.videoplatform.example"  # in the production overlay's ALLOWED_HOSTS
# Places in the image no process may write to (the read-only root; /root is not the user's).
READ_ONLY_PROBES = ["/", "/app", "/app/videoplatform", "/opt/venv", "/etc", "/usr/bin", "/var/tmp", "/root"]  # noqa: S108


@dataclass
class Container:
    """One container of the manifests that runs the application image."""

    workload: str  # "Kind/name"
    name: str
    image: str
    command: list[str]
    env: dict[str, str]  # literal values, resource fields resolved
    config_maps: list[str]
    secrets: list[str]
    run_as_user: int
    run_as_group: int
    read_only_root: bool
    allow_privilege_escalation: bool
    capabilities_drop: list[str]
    writable: list[str]  # the mount paths of its volumes
    startup_probe: list[str] | None = None
    port: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def render(overlay: str = OVERLAY) -> list[dict[str, Any]]:
    import yaml

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise SystemExit("kubectl is needed to render the manifests: run k8s/tools/install.sh")
    out = subprocess.run(
        [kubectl, "kustomize", str(REPO / overlay)], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    return spec["template"]["spec"]


def _resource_value(container: dict[str, Any], ref: dict[str, Any]) -> str:
    kind, _, name = ref["resource"].partition(".")
    raw = str(container.get("resources", {}).get(kind, {}).get(name, "0"))
    value = float(raw[:-1]) / 1000 if raw.endswith("m") else float(raw)
    return str(math.ceil(value / float(ref.get("divisor", "1"))))


def app_containers(objects: list[dict[str, Any]]) -> dict[str, Container]:
    """Every container running the application image, keyed by "Kind/name"."""
    found: dict[str, Container] = {}
    for obj in objects:
        if obj["kind"] not in ("Deployment", "StatefulSet", "Job", "CronJob"):
            continue
        pod = _pod_spec(obj)
        pod_security = pod.get("securityContext", {})
        for c in pod.get("containers", []):
            if c["image"].rpartition(":")[0] != APP_IMAGE:
                continue
            security = {**pod_security, **c.get("securityContext", {})}
            env: dict[str, str] = {}
            for item in c.get("env", []):
                if "value" in item:
                    env[item["name"]] = str(item["value"])
                elif "resourceFieldRef" in item.get("valueFrom", {}):
                    env[item["name"]] = _resource_value(c, item["valueFrom"]["resourceFieldRef"])
            probe = c.get("startupProbe", {}).get("exec", {}).get("command")
            ports = [p["containerPort"] for p in c.get("ports", [])]
            key = f"{obj['kind']}/{obj['metadata']['name']}"
            found[key] = Container(
                workload=key,
                name=c["name"],
                image=c["image"],
                command=list(c.get("command", [])) + list(c.get("args", [])),
                env=env,
                config_maps=[e["configMapRef"]["name"] for e in c.get("envFrom", []) if "configMapRef" in e],
                secrets=[e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e],
                run_as_user=int(security.get("runAsUser", -1)),
                run_as_group=int(security.get("runAsGroup", -1)),
                read_only_root=bool(security.get("readOnlyRootFilesystem", False)),
                allow_privilege_escalation=bool(security.get("allowPrivilegeEscalation", True)),
                capabilities_drop=list(security.get("capabilities", {}).get("drop", [])),
                writable=[m["mountPath"] for m in c.get("volumeMounts", [])],
                startup_probe=probe,
                port=ports[0] if ports else None,
            )
    return found


def config_map_data(objects: list[dict[str, Any]], name: str) -> dict[str, str]:
    for obj in objects:
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == name:
            return {k: str(v) for k, v in obj.get("data", {}).items()}
    raise SystemExit(f"ConfigMap {name} is not in the rendered manifests")


def metrics_token_settings() -> set[str]:
    """The environment variables the settings read for a /metrics bearer token, if any."""
    names: set[str] = set()
    for path in (REPO / "settings").glob("*.py"):
        names.update(re.findall(r"[\"'](METRICS_[A-Z_]*TOKEN[A-Z_]*)[\"']", path.read_text()))
    return names


# ------------------------------------------------------------------ running in the image ---

# Runs in new mount and PID namespaces (unshare), as root on the host side: mounts the image's
# root read-only with the volumes, /dev, /proc, /etc/hosts and /etc/resolv.conf the kubelet
# would give it, then becomes the manifest's user inside the chroot and runs the command with
# exactly the container's environment.
_LAUNCH = r"""
set -eu
rootfs=$1 mnt=$2 uid=$3 gid=$4 ro=$5
shift 5
mount --bind "$rootfs" "$mnt"
while [ "$1" != "--" ]; do
    real=$(chroot "$mnt" /usr/bin/realpath -m "$1")
    chroot "$mnt" /usr/bin/mkdir -p "$real"
    mount -t tmpfs -o mode=1777,nosuid,nodev,size=256m tmpfs "$mnt$real"
    shift
done
shift
mount -t tmpfs -o mode=755,nosuid tmpfs "$mnt/dev"
for d in null zero full random urandom tty; do : >"$mnt/dev/$d"; mount --bind "/dev/$d" "$mnt/dev/$d"; done
mkdir "$mnt/dev/shm" && mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$mnt/dev/shm"
ln -s /proc/self/fd "$mnt/dev/fd"
mount -t proc -o nosuid,nodev,noexec proc "$mnt/proc"
for f in hosts resolv.conf; do [ -e "$mnt/etc/$f" ] && mount --bind -o ro "/etc/$f" "$mnt/etc/$f"; done
[ "$ro" = true ] && mount -o remount,bind,ro "$mnt"
exec chroot "$mnt" /usr/bin/setpriv --reuid="$uid" --regid="$gid" --clear-groups --no-new-privs \
    --inh-caps=-all --bounding-set=-all -- /usr/bin/env -i -C "$WORKDIR" "$@"
"""


@dataclass
class Image:
    name: str
    rootfs: Path
    workdir: str
    user: str
    env: dict[str, str]


@contextlib.contextmanager
def mounted(image: str) -> Iterator[Image]:
    ctr = subprocess.run(
        ["buildah", "from", "--pull-never", "--quiet", image], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        rootfs = subprocess.run(["buildah", "mount", ctr], check=True, capture_output=True, text=True).stdout
        info = json.loads(
            subprocess.run(
                ["buildah", "inspect", "--type", "image", image], check=True, capture_output=True, text=True
            ).stdout
        )
        config = info["OCIv1"]["config"]
        env = dict(item.split("=", 1) for item in config.get("Env", []))
        yield Image(image, Path(rootfs.strip()), config.get("WorkingDir", "/"), config.get("User", ""), env)
    finally:
        subprocess.run(["buildah", "umount", ctr], capture_output=True, check=False)
        subprocess.run(["buildah", "rm", ctr], capture_output=True, check=False)


class Process:
    """One container's process, started from the image."""

    def __init__(self, image: Image, container: Container, env: dict[str, str], label: str, log_dir: Path):
        self.label = label
        self.mount = MOUNT_BASE / label
        self.mount.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{label}.log"
        self.log = self.log_path.open("wb")
        argv = [
            "unshare", "--mount", "--pid", "--fork", "--kill-child", "--propagation", "private",
            "sh", "-c", _LAUNCH, "launch",
            str(image.rootfs), str(self.mount), str(container.run_as_user), str(container.run_as_group),
            "true" if container.read_only_root else "false",
            *container.writable, "--",
            *(f"{k}={v}" for k, v in sorted(env.items())),
            *container.command,
        ]  # fmt: skip
        self.container = container
        self.env = env
        self.popen = subprocess.Popen(
            argv,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={"PATH": os.environ["PATH"], "WORKDIR": image.workdir},
        )

    def init_pid(self) -> int | None:
        """The host pid of the container's first process (pid 1 in its namespace)."""
        try:
            children = Path(f"/proc/{self.popen.pid}/task/{self.popen.pid}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def pids(self) -> list[int]:
        first = self.init_pid()
        todo, seen = ([first] if first else []), []
        while todo:
            pid = todo.pop()
            seen.append(pid)
            with contextlib.suppress(OSError):
                for task in Path(f"/proc/{pid}/task").iterdir():
                    todo += [int(p) for p in (task / "children").read_text().split()]
        return seen

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.popen.poll() is None:
            pid = self.init_pid()
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self.log.close()
        return self.popen.returncode

    def probe(self, command: list[str]) -> int:
        """Runs an exec probe the way the kubelet does: inside the container, as its user."""
        pid = self.init_pid()
        if pid is None:
            return -1
        user, group = self.container.run_as_user, self.container.run_as_group
        env = [f"{k}={v}" for k, v in sorted(self.env.items())]
        argv = [
            "nsenter", f"--target={pid}", "--mount", "--pid", "--root", "--wd",
            "/usr/bin/setpriv", f"--reuid={user}", f"--regid={group}", "--clear-groups",
            "/usr/bin/env", "-i", *env, *command,
        ]  # fmt: skip
        return subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode


# ------------------------------------------------------------------------------ checks ---


class Smoke:
    def __init__(self, image: Image, objects: list[dict[str, Any]], log_dir: Path) -> None:
        self.image = image
        self.objects = objects
        self.containers = app_containers(objects)
        self.log_dir = log_dir
        self.processes: list[Process] = []
        self.failures: list[str] = []
        self.db_name = os.environ.get("IMAGE_SMOKE_DB", "vp_image_smoke")
        self.redis_url = os.environ.get("IMAGE_SMOKE_REDIS_URL") or os.environ.get(
            "REDIS_URL", "redis://127.0.0.1:6379/13"
        )
        self.bucket = "videoplatform-image-smoke"
        self.metrics_token = secrets.token_urlsafe(24)
        self.port = 18000 + os.getpid() % 1000
        # The API's metrics listener (METRICS_PORT in the manifest) gets a port of its own here.
        self.metrics_port = self.port + 1000
        self.metrics_listener = False

    # -- helpers
    def ok(self, what: str) -> None:
        print(f"  ok    {what}", flush=True)

    def fail(self, what: str) -> None:
        print(f"  FAIL  {what}", flush=True)
        self.failures.append(what)

    def check(self, condition: bool, what: str) -> bool:
        (self.ok if condition else self.fail)(what)
        return condition

    def env_for(self, container: Container) -> dict[str, str]:
        """The container's environment: the image's, the ConfigMap's, the Secret's (loopback
        values standing in for the real ones), then its own literal values."""
        env = dict(self.image.env)
        for name in container.config_maps:
            env.update(config_map_data(self.objects, name))
        pg = "videoplatform:videoplatform@127.0.0.1"
        env.update(
            {
                "SECRET_KEY": self.secret_key,
                "DATABASE_URL": f"postgres://{pg}:6432/{self.db_name}",
                "DATABASE_DIRECT_URL": f"postgres://{pg}:5432/{self.db_name}",
                "REDIS_URL": self.redis_url,
                "CELERY_BROKER_URL": self.redis_url,
                "AWS_STORAGE_BUCKET_NAME": self.bucket,
                "AWS_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
                "AWS_ACCESS_KEY_ID": "smoke",
                "AWS_SECRET_ACCESS_KEY": "smoke",
                "LIVE_HOOK_SECRET": self.secret_key[:32],
            }
        )
        # Whatever setting guards /metrics with a bearer token gets one (sent with the scrape).
        env.update(dict.fromkeys(metrics_token_settings(), self.metrics_token))
        env.update(container.env)
        # As container runtimes do: HOME from the image's passwd entry of the user.
        env.setdefault("HOME", self.home(container.run_as_user))
        if container.port:
            env["PORT"] = str(self.port)
            env["HOST"] = "127.0.0.1"
            if "METRICS_PORT" in env:
                env["METRICS_PORT"] = str(self.metrics_port)
                self.metrics_listener = True
        return env

    def home(self, uid: int) -> str:
        for line in (self.image.rootfs / "etc" / "passwd").read_text().splitlines():
            fields = line.split(":")
            if len(fields) > 5 and fields[2] == str(uid):
                return fields[5]
        return "/"

    def start(self, workload: str, label: str | None = None, command: list[str] | None = None) -> Process:
        container = self.containers[workload]
        if command is not None:
            container = Container(**{**container.__dict__, "command": command})
        label = label or container.workload.split("/")[1]
        process = Process(self.image, container, self.env_for(container), label, self.log_dir)
        self.processes.append(process)
        return process

    def run(
        self, workload: str, label: str, command: list[str] | None = None, timeout: float = 300
    ) -> Process:
        process = self.start(workload, label, command)
        process.wait(timeout)
        process.log.close()
        return process

    def http(
        self, path: str, host: str | None = None, token: str | None = None, port: int | None = None
    ) -> tuple[int, bytes]:
        request = urllib.request.Request(f"http://127.0.0.1:{port or self.port}{path}")
        if host:
            request.add_header("Host", host)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return 0, b""

    # -- the steps
    def prepare(self) -> None:
        self.secret_key = secrets.token_urlsafe(48)
        subprocess.run(
            ["psql", "-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres",
             "-v", "ON_ERROR_STOP=1",
             "-c", f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)',
             "-c", f'CREATE DATABASE "{self.db_name}" OWNER videoplatform'],
            check=True, capture_output=True,
        )  # fmt: skip
        import redis

        redis.Redis.from_url(self.redis_url).flushdb()
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url="http://127.0.0.1:9000",
            aws_access_key_id="smoke",
            aws_secret_access_key="smoke",  # noqa: S106 - the local S3 server takes any key
            region_name="ap-northeast-1",
        )
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
            s3.create_bucket(
                Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-1"}
            )
        self.s3 = s3

    def check_manifests_and_image(self) -> None:
        missing = [w for w in SMOKE_WORKLOADS if w not in self.containers]
        extra = [w for w in self.containers if w not in SMOKE_WORKLOADS]
        self.check(
            not missing and not extra,
            f"the manifests' app containers are the smoke test's: {sorted(self.containers)}",
        )
        users = {(c.run_as_user, c.run_as_group) for c in self.containers.values()}
        image_user = tuple(int(x) for x in self.image.user.split(":"))
        self.check(users == {image_user}, f"every manifest runs as the image's USER {self.image.user}")
        self.check(
            all(c.read_only_root and not c.allow_privilege_escalation and c.capabilities_drop == ["ALL"]
                for c in self.containers.values()),
            "every container: read-only root, no privilege escalation, all capabilities dropped",
        )  # fmt: skip

    def check_ffmpeg(self) -> None:
        p = self.run(
            "Deployment/worker-transcoding", "ffmpeg-version", ["ffmpeg", "-hide_banner", "-version"], 60
        )
        first = p.output().splitlines()[0] if p.output() else ""
        print(f"        {first}")
        version = first.split()[2] if first.startswith("ffmpeg version") else ""
        major = int(version.split(".")[0].split("-")[0]) if version[:1].isdigit() else 0
        self.check(p.popen.returncode == 0 and major >= 5, f"ffmpeg in the image ({version or 'missing'})")

    def check_read_only(self) -> None:
        api = self.containers["Deployment/api"]
        script = (
            "import errno, json, os\n"
            "result = {}\n"
            f"for d in {[*READ_ONLY_PROBES, *api.writable]!r}:\n"
            "    try:\n"
            "        with open(os.path.join(d, '.smoke-write'), 'w') as f: f.write('x')\n"
            "        os.unlink(os.path.join(d, '.smoke-write'))\n"
            "        result[d] = 'written'\n"
            "    except OSError as exc:\n"
            "        result[d] = errno.errorcode[exc.errno]\n"
            "ids = {'uid': os.getuid(), 'gid': os.getgid(), 'euid': os.geteuid()}\n"
            "print(json.dumps({**ids, 'writes': result}))\n"
        )
        p = self.run("Deployment/api", "read-only-probe", ["python", "-c", script], 60)
        try:
            report = json.loads(p.output().strip().splitlines()[-1])
        except (ValueError, IndexError):
            self.fail(f"the read-only probe ran: {p.output()[-500:]}")
            return
        writes = report["writes"]
        print(f"        {writes}")
        written = {d for d, r in writes.items() if r == "written"}
        self.check(
            written == set(api.writable),
            f"writable only where the manifest mounts volumes: {sorted(written)}",
        )
        self.check(report["uid"] == report["euid"] == api.run_as_user, f"runs as uid {report['uid']}")

    def check_migrate(self) -> None:
        job = self.containers["Job/migrate"]
        p = self.run("Job/migrate", "migrate", None, 600)
        applied = p.output().count(" OK")
        self.check(
            p.popen.returncode == 0, f"migration Job {' '.join(job.command)}: {applied} migrations applied"
        )
        if p.popen.returncode:
            print(p.output()[-3000:])

    def check_deploy(self) -> None:
        p = self.run(
            "Deployment/api",
            "check-deploy",
            ["python", "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
            120,
        )
        out = p.output().strip()
        print("        " + (out.splitlines()[-1] if out else ""))
        self.check(
            p.popen.returncode == 0, "manage.py check --deploy --fail-level WARNING with settings.prod"
        )
        if p.popen.returncode:
            print(out[-3000:])

    def check_api(self) -> Process:
        api = self.start("Deployment/api")
        deadline = time.monotonic() + 90
        status = 0
        while time.monotonic() < deadline and api.popen.poll() is None:
            status, _ = self.http("/health", host=f"127.0.0.1:{self.port}")
            if status == 200:
                break
            time.sleep(0.5)
        self.check(status == 200, f"gunicorn answers /health (as the kubelet asks, by IP): {status}")
        status, body = self.http("/ready", host=f"127.0.0.1:{self.port}")
        self.check(status == 200, f"/ready: {status} {body[:200]!r}")
        status, body = self.http("/api/videos", host=HOST)
        is_list = status == 200 and isinstance(json.loads(body or b"null"), dict | list)
        self.check(is_list, f"API read GET /api/videos: {status} {body[:120]!r}")
        scrape = self.metrics_port if self.metrics_listener else self.port
        if self.metrics_listener:
            status, _ = self.http("/metrics", host=f"127.0.0.1:{self.port}", token=self.metrics_token)
            self.check(status == 404, f"/metrics is not on the public port (METRICS_PORT): {status}")
        status, body = self.http(
            "/metrics", host=f"127.0.0.1:{scrape}", token=self.metrics_token, port=scrape
        )
        self.check(
            status == 200
            and any(
                line.startswith(b"http_requests_total{")
                and b'view="api/videos"' in line
                and b'status="200"' in line
                for line in body.splitlines()
            ),
            f"/metrics: {status}, {len(body)} bytes, counts the API read",
        )
        return api

    def check_workers_and_beat(self) -> dict[str, Process]:
        started = {
            w: self.start(w)
            for w in SMOKE_WORKLOADS
            if w.startswith("Deployment/worker") or w.endswith("/beat")
        }
        deadline = time.monotonic() + 120
        pending = {w for w, c in started.items() if self.containers[w].startup_probe}
        while pending and time.monotonic() < deadline:
            for w in list(pending):
                if started[w].probe(self.containers[w].startup_probe or []) == 0:
                    pending.discard(w)
            time.sleep(1)
        for w, p in started.items():
            if self.containers[w].startup_probe:
                self.check(
                    w not in pending and p.popen.poll() is None, f"{w}: startup probe passes (heartbeat)"
                )
        beat = started["Deployment/beat"]
        deadline = time.monotonic() + 60
        command = self.containers["Deployment/beat"].command
        schedule = command[command.index("--schedule") + 1] if "--schedule" in command else ""
        has_schedule = False
        while time.monotonic() < deadline and beat.popen.poll() is None and not has_schedule:
            time.sleep(0.5)
            init = beat.init_pid()
            # Its volume, seen from the host through the process's root.
            has_schedule = bool(
                init and schedule and list(Path(f"/proc/{init}/root").glob(schedule.lstrip("/") + "*"))
            )
        self.check(
            beat.popen.poll() is None and "beat" in beat.output() and has_schedule,
            f"beat started and keeps its schedule in {schedule or '?'}",
        )
        return started

    def check_transcode(self, api: Process) -> None:
        script = (
            "import json, subprocess\n"
            "from django.contrib.auth import get_user_model\n"
            "from django.core.files.uploadedfile import SimpleUploadedFile\n"
            "from streaming import services as media\n"
            "from videos import intake as videos\n"
            "subprocess.run(['ffmpeg', '-v', 'error', '-y', '-f', 'lavfi', '-i', "
            "'testsrc=size=320x240:rate=25:duration=3', '-f', 'lavfi', '-i', "
            "'sine=frequency=440:duration=3', '-shortest', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', "
            "'-c:a', 'aac', '/tmp/source.mp4'], check=True)\n"
            "owner = get_user_model().objects.create_user(username='smoke', email='smoke@example.com', "
            "password='smoke-password-1')\n"
            "data = open('/tmp/source.mp4', 'rb').read()\n"
            "upload = SimpleUploadedFile('source.mp4', data, content_type='video/mp4')\n"
            "video = videos.video_create_with_upload(owner=owner, upload=upload, "
            "probe_result=media.media_probe_local(path='/tmp/source.mp4'), title='Smoke test')\n"
            "print(json.dumps({'video': str(video.pk), 'status': video.status}))\n"
        )
        started = time.monotonic()
        p = self.run("Deployment/api", "upload", ["python", "manage.py", "shell", "-c", script], 120)
        try:
            video_id = json.loads(p.output().strip().splitlines()[-1])["video"]
        except (ValueError, IndexError, KeyError):
            self.fail(f"a video with its upload created from the image: {p.output()[-2000:]}")
            return
        status = ""
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            code, body = self.http(f"/api/videos/{video_id}", host=HOST)
            status = json.loads(body).get("status", "") if code == 200 else f"HTTP {code}"
            if status in ("ready", "failed"):
                break
            time.sleep(2)
        objects = self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        playlists = [o["Key"] for o in objects if o["Key"].endswith(".m3u8") and video_id in o["Key"]]
        self.check(
            status == "ready" and bool(playlists),
            f"transcode by the transcoding worker: video {status} in {time.monotonic() - started:.0f} s, "
            f"{len(playlists)} HLS playlists in S3",
        )

    def check_users(self, processes: list[Process]) -> None:
        wrong = []
        count = 0
        for process in processes:
            for pid in process.pids():
                with contextlib.suppress(OSError):
                    uids = next(
                        line.split()[1:]
                        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                        if line.startswith("Uid:")
                    )
                    count += 1
                    if set(uids) != {str(process.container.run_as_user)}:
                        wrong.append((process.label, pid, uids))
        self.check(
            count > 0 and not wrong,
            f"all {count} processes of the running containers run as uid 10001 {wrong or ''}",
        )

    def check_live_ingest(self) -> Process:
        """The ingest's own command line with loopback ports and addresses in place of the
        pod's ($(POD_NAME), $(LIVE_HOOKS_URL)): nginx with the RTMP module starts as the
        manifest's user on the read-only root and answers its readiness path."""
        command = list(self.containers["StatefulSet/live-ingest"].command)
        values = {
            "--listen": "127.0.0.1",
            "--rtmp-port": str(INGEST_RTMP_PORT),
            "--http-port": str(INGEST_HTTP_PORT),
            "--hooks-url": f"http://127.0.0.1:{self.port}/internal/live/hooks",
            "--origin-url": f"http://127.0.0.1:{INGEST_HTTP_PORT}/live",
        }
        for flag, value in values.items():
            if flag in command:
                command[command.index(flag) + 1] = value
        ingest = self.start("StatefulSet/live-ingest", "live-ingest", command)
        deadline = time.monotonic() + 60
        status = 0
        while time.monotonic() < deadline and ingest.popen.poll() is None:
            status, _ = self.http("/healthz", port=INGEST_HTTP_PORT)
            if status == 200:
                break
            time.sleep(0.5)
        self.check(status == 200, f"live ingest (nginx + RTMP module) answers /healthz: {status}")
        return ingest

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def main(self) -> int:
        self.prepare()
        try:
            self.check_manifests_and_image()
            self.check_ffmpeg()
            self.check_read_only()
            self.check_migrate()
            self.check_deploy()
            api = self.check_api()
            workers = self.check_workers_and_beat()
            self.check_transcode(api)
            ingest = self.check_live_ingest()
            self.check_users([api, *workers.values(), ingest])
        finally:
            self.stop_all()
        errors = [
            f"{p.label}: {line}"
            for p in self.processes
            for line in p.output().splitlines()
            if "[ERROR]" in line or "Traceback" in line or '"level": "ERROR"' in line
        ]
        self.check(
            not errors, "no errors in the processes' logs" + "".join(f"\n        {e}" for e in errors[:10])
        )
        self.check(
            all(p.popen.returncode is not None for p in self.processes), "every process stopped on SIGTERM"
        )
        return 1 if self.failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True)
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    args = parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="image-smoke-"))
    started = time.monotonic()
    print(f"== image smoke: {args.image}, the containers of {OVERLAY}")
    with mounted(args.image) as image:
        smoke = Smoke(image, render(), log_dir)
        status = smoke.main()
    print(f"== image smoke: {'FAILED' if status else 'passed'} in {time.monotonic() - started:.0f} s")
    if status or args.keep_logs:
        for log in sorted(log_dir.glob("*.log")):
            print(f"---- {log.stem} (last lines)")
            print("\n".join(log.read_text(errors="replace").splitlines()[-25:]))
    shutil.rmtree(log_dir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
