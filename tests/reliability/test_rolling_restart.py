"""Deploys under a steady mixed load lose nothing: the API replaced pod by pod as a Kubernetes
RollingUpdate does it (new pod ready before it gets traffic, the old one leaving the endpoints
during its preStop sleep, then SIGTERM and gunicorn's graceful drain), and the deploy without
Kubernetes (new gunicorn workers on the same socket: TTIN, wait until they are ready, TTOU).
The Service is the TCP balancer of bench/faults/rollout.py, which keeps keep-alive connections
on their pod as kube-proxy does. Timings are the manifests' scaled down (a 2 s preStop instead
of 10 s, endpoints updated after 0.5 s instead of about 1 s)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from accounts import services
from bench.faults.rollout import Deployment
from bench.loadgen import LoadGenerator, User
from tests.factories import DEFAULT_PASSWORD, UserFactory, VideoFactory
from tests.reliability.conftest import CLIENT_TIMEOUT, print_report
from tests.security.conftest import live_database_url
from tests.support.processes import RedisServer, base_env
from videos.models import Video

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    redis_server = RedisServer()
    redis_server.start()
    env = base_env(
        DJANGO_SETTINGS_MODULE="settings.test",
        DATABASE_URL=live_database_url(),
        REDIS_URL=redis_server.url,
        VAR_DIR=str(tmp_path / "var"),
        LOG_LEVEL="WARNING",
        UPLOADS_PER_DAY="1000000",
        TRANSCODE_MINUTES_PER_DAY="1000000",
    )
    built = Deployment(env, replicas=2, workers=1, pre_stop=2.0, propagation=0.5, probe_period=0.5)
    try:
        built.start()
        yield built
    finally:
        built.stop()
        redis_server.stop()


def _cast() -> tuple[list[User], list[str]]:
    users = []
    for _ in range(3):
        account = UserFactory()
        token = services.token_issue(user=account).token
        users.append(User(username=account.username, password=DEFAULT_PASSWORD, token=token, id=account.pk))
    return users, [VideoFactory(ready=True).pk for _ in range(5)]


def test_rolling_restart_and_worker_rotation_under_load_fail_no_request(deployment: Deployment) -> None:
    users, videos = _cast()
    old_pods = {pod.pid for pod in deployment.pods}
    load = LoadGenerator(deployment.url, users=users, video_ids=videos, threads=4, timeout=CLIENT_TIMEOUT)
    load.start(duration=120)
    time.sleep(2)
    fault_at = load.now()
    deployment.rolling_restart()
    rolled_at = load.now()
    old_workers = {pid for pod in deployment.pods for pid in pod.workers}
    deployment.reload("rotate")
    time.sleep(2)
    report = load.stop()
    print_report("rolling restart, then a worker rotation", report, fault_at, rolled_at)

    assert not old_pods & {pod.pid for pod in deployment.pods}, "every pod was replaced"
    assert not old_workers & {pid for pod in deployment.pods for pid in pod.workers}, "and every worker"
    assert report.between(fault_at, rolled_at).sent > 50, "the load ran through the restart"
    assert report.failed == 0, report.failures[:5]
    acknowledged = report.acknowledged_writes
    assert acknowledged and Video.objects.filter(pk__in=acknowledged).count() == len(acknowledged)
