"""Celery tasks right after a commit read the primary; a task that writes pins its client.

A real worker (in a thread of this process, on an in-memory broker) runs the tasks; the data
layer's publish / prerun / postrun hooks are Celery signals, so they apply to this app too.
"""

from __future__ import annotations

import time

import pytest
from celery import Celery, _state
from celery.contrib.testing.worker import start_worker

from tests.db.support import REPLICATED, replay_paused, wait_for_replay
from tests.factories import VideoFactory
from videoplatform.db.routing import pins_exist, routing_context
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
        assert result == {"read_from": "default", "seen": "Committed"}
        # The task wrote: the client that enqueued it reads the primary for the window.
        assert pins_exist({"t:client-a"})

        # A task enqueued long ago (a backlog, a retry) reads the replica like a request...
        stale = {"vp_enqueued_at": time.time() - 3600}
        assert peek.apply_async((video.pk,), headers=stale).get(timeout=30) == {
            "read_from": "replica1",
            "seen": "Before",
        }
        # ...unless its task says it always reads the primary.
        assert peek_primary.apply_async((video.pk,), headers=stale).get(timeout=30) == {
            "read_from": "default",
            "seen": "Retitled by a task",
        }


def test_a_task_that_only_reads_pins_nobody(data_layer, worker):
    video = VideoFactory()
    with routing_context(client_keys={"t:client-b"}):
        assert peek.delay(video.pk).get(timeout=30)["read_from"] == "default"
    assert not pins_exist({"t:client-b"})
