"""A Celery task reads what was committed before it was enqueued: from a replica that has
replayed the position stamped on it, else from the primary; a task that writes pins its client.

A real worker (in a thread of this process, on an in-memory broker) runs the tasks; the data
layer's publish / prerun / postrun hooks are Celery signals, so they apply to this app too.
"""

from __future__ import annotations

import pytest
from celery import Celery, _state
from celery.contrib.testing.worker import start_worker

from tests.db.support import REPLICATED, replay_paused, wait_for_replay
from tests.factories import VideoFactory
from tests.support.processes import wait_until
from videoplatform.db.celery_hooks import MIN_LSN_HEADER
from videoplatform.db.lsn import commit_position, to_hex
from videoplatform.db.replicas import monitor
from videoplatform.db.routing import pinned_position, pins_exist, routing_context
from videos.models import Video

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True, databases=REPLICATED)]

app = Celery("videoplatform-db-tests", broker="memory://", backend="cache+memory://", set_as_current=False)
app.conf.update(
    task_default_queue="db-tests",
    worker_hijack_root_logger=False,
    broker_transport_options={"polling_interval": 0.05},
)


@app.task(name="tests.db.retitle")
def retitle(video_id: str, title: str) -> dict[str, str]:
    before = Video.objects.get(pk=video_id)
    Video.objects.filter(pk=video_id).update(title=title)
    return {"read_from": before._state.db, "seen": before.title}


@app.task(name="tests.db.peek")
def peek(video_id: str) -> dict[str, str]:
    video = Video.objects.get(pk=video_id)
    return {"read_from": video._state.db, "seen": video.title}


@app.task(name="tests.db.peek_primary", reads_from_primary=True)
def peek_primary(video_id: str) -> dict[str, str]:
    return peek(video_id)


@pytest.fixture(scope="module")
def worker(data_layer):
    # start_worker makes its app the current and default one (its worker thread relies on
    # that); the rest of the suite publishes through the platform's app: give both back after.
    current, default = _state.get_current_app(), _state.default_app
    try:
        with start_worker(app, perform_ping_check=False, shutdown_timeout=10):
            yield
    finally:
        current.set_current()
        _state.set_default_app(default)


def test_a_task_enqueued_after_a_commit_reads_it_from_the_primary(data_layer, worker):
    video = VideoFactory(title="Before")
    wait_for_replay(data_layer)

    with replay_paused(data_layer):
        Video.objects.filter(pk=video.pk).update(title="Committed")
        with routing_context(client_keys={"t:client-a"}):
            result = retitle.delay(video.pk, "Retitled by a task").get(timeout=30)
        # The replica has not replayed the update the task was enqueued after: the primary.
        assert result == {"read_from": "default", "seen": "Committed"}
        # The task wrote: the client that enqueued it is pinned to the task's commit.
        assert pinned_position({"t:client-a"}) > 0

        # A task that needs an old position only (a backlog, a retry) reads the replica...
        old = {MIN_LSN_HEADER: to_hex(1)}
        assert peek.apply_async((video.pk,), headers=old).get(timeout=30) == {
            "read_from": "replica1",
            "seen": "Before",
        }
        # ...unless its task says it always reads the primary.
        assert peek_primary.apply_async((video.pk,), headers=old).get(timeout=30) == {
            "read_from": "default",
            "seen": "Retitled by a task",
        }
        # One enqueued now needs the position now: not replayed yet, so the primary.
        assert peek.delay(video.pk).get(timeout=30) == {"read_from": "default", "seen": "Retitled by a task"}

    # Once the replica has replayed the position a task carries, the task reads the replica and
    # sees everything committed before it was enqueued.
    position = commit_position()
    assert wait_until(lambda: monitor.reached("replica1", position), timeout=30)
    caught_up = {MIN_LSN_HEADER: to_hex(position)}
    assert peek.apply_async((video.pk,), headers=caught_up).get(timeout=30) == {
        "read_from": "replica1",
        "seen": "Retitled by a task",
    }


def test_a_task_that_only_reads_pins_nobody(data_layer, worker):
    video = VideoFactory()
    with routing_context(client_keys={"t:client-b"}):
        assert peek.delay(video.pk).get(timeout=30)["seen"] == video.title
    assert not pins_exist({"t:client-b"})
