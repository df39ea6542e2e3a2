"""After-commit work of the media pipeline that can fail (the broker, the storage) never turns a
committed upload into an error answer: the write stands, and the media sweep catches up."""

from __future__ import annotations

from typing import Any

import pytest

from streaming.models import MediaFile
from tests.jobs.support import app_on_broker
from videos.models import Video

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_upload_committed_while_the_broker_is_down_answers_201(
    user_client: Any, user: Any, clip: Any
) -> None:
    with app_on_broker("redis://127.0.0.1:1/0") as app:
        app.conf.broker_transport_options = {"max_retries": 0}
        app.conf.broker_connection_max_retries = 0
        app._after_fork()
        with open(clip(width=320, height=240), "rb") as handle:
            response = user_client.post(
                "/api/videos/create", {"file": handle, "title": "No broker"}, format="multipart"
            )
    assert response.status_code == 201, response.content
    video = Video.objects.get(owner=user)
    assert response.json()["id"] == video.pk
    assert MediaFile.objects.get(video=video).status == MediaFile.Status.UPLOADED
