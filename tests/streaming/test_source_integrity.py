"""What the worker transcodes is what the intake checked: a client cannot swap the source after
``upload/complete`` (its upload URL writes a staging key, copied to a key no client can write),
the worker re-checks the size (and, on S3, the version), and the upload target itself refuses
more bytes than declared."""

from __future__ import annotations

import base64
import json
from io import StringIO
from urllib.parse import parse_qs, urlparse

import pytest
from django.core.management import call_command

from streaming import services, storage
from streaming.models import MediaFile
from tests.streaming.conftest import upload_to_target

pytestmark = pytest.mark.django_db


def _create(client, **fields):
    response = client.post("/api/videos/create", {"title": "Swap", **fields}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.mark.services
def test_a_source_replaced_after_completion_is_not_what_gets_transcoded(
    user_client, bucket, clip, django_capture_on_commit_callbacks
):
    checked = clip(width=640, height=360).read_bytes()
    swapped = clip(width=1280, height=720, duration=3.0).read_bytes()
    body = _create(user_client, file_name="trip.mp4", content_type="video/mp4")
    upload_to_target(body["upload"], checked)
    with django_capture_on_commit_callbacks(execute=True):
        assert user_client.post(body["upload"]["complete_url"], {}, format="json").status_code == 202
    # The upload URL is still valid: the client sends something else to it.
    upload_to_target(body["upload"], swapped)

    media_file = MediaFile.objects.get(video_id=body["id"])
    assert bucket.Object(media_file.source_path).get()["Body"].read() == checked
    with django_capture_on_commit_callbacks(execute=True):
        services.media_file_transcode(media_file_id=media_file.pk)
    media_file.refresh_from_db()
    assert media_file.status == "ready", media_file.error
    assert (media_file.width, media_file.height) == (640, 360)
    assert [r.quality for r in media_file.renditions.all()] == [360]


@pytest.mark.services
def test_the_worker_refuses_an_s3_source_that_is_not_the_checked_version(
    user_client, bucket, clip, django_capture_on_commit_callbacks
):
    body = _create(user_client, file_name="trip.mp4", content_type="video/mp4")
    upload_to_target(body["upload"], clip(width=640, height=360).read_bytes())
    with django_capture_on_commit_callbacks(execute=True):
        assert user_client.post(body["upload"]["complete_url"], {}, format="json").status_code == 202
    media_file = MediaFile.objects.get(video_id=body["id"])
    # Same size, other bytes (as if someone with bucket access rewrote it).
    data = bytearray(bucket.Object(media_file.source_path).get()["Body"].read())
    data[-10:] = b"0123456789"
    bucket.Object(media_file.source_path).put(Body=bytes(data))
    services.media_file_transcode(media_file_id=media_file.pk)
    media_file.refresh_from_db()
    assert media_file.status == "failed" and "changed after it was checked" in media_file.error


def test_the_worker_rechecks_the_size_of_a_stored_source(user_client, clip, media_root):
    source = clip(width=640, height=360)
    with open(source, "rb") as handle:
        response = user_client.post("/api/videos/create", {"file": handle, "title": "x"}, format="multipart")
    assert response.status_code == 201
    media_file = MediaFile.objects.get(video_id=response.json()["id"])
    stored = media_root / media_file.source_path
    stored.write_bytes(stored.read_bytes() + b"\0" * 4096)
    services.media_file_transcode(media_file_id=media_file.pk)
    media_file.refresh_from_db()
    assert media_file.status == "failed" and "changed after it was checked" in media_file.error


@pytest.mark.services
def test_the_upload_target_refuses_more_than_declared(user_client, bucket, settings):
    body = _create(user_client, file_name="trip.mp4", content_type="video/mp4", file_size=5000)
    upload = body["upload"]
    policy = json.loads(base64.b64decode(upload["fields"]["policy"]))
    assert ["content-length-range", 1, 5000] in policy["conditions"]
    assert {"key": upload["fields"]["key"]} in policy["conditions"] or any(
        c == ["eq", "$key", upload["fields"]["key"]] for c in policy["conditions"]
    )
    assert upload["max_bytes"] == 5000

    settings.MEDIA_UPLOAD_MULTIPART_THRESHOLD = 1000
    settings.MEDIA_UPLOAD_PART_SIZE = 2000
    multipart = _create(user_client, file_name="big.mp4", file_size=5000)["upload"]["multipart"]
    assert [(p["part_number"], p["size"]) for p in multipart["parts"]] == [(1, 2000), (2, 2000), (3, 1000)]
    for part in multipart["parts"]:
        query = parse_qs(urlparse(part["url"]).query)
        assert "content-length" in query["X-Amz-SignedHeaders"][0].split(";")


@pytest.mark.services
def test_completing_with_more_than_declared_is_413_and_removes_it(user_client, bucket, clip):
    data = clip(width=640, height=360).read_bytes()
    body = _create(user_client, file_name="trip.mp4", file_size=len(data) - 1)
    # The local S3 server does not enforce the policy; the completion checks again.
    upload_to_target(body["upload"], data)
    response = user_client.post(body["upload"]["complete_url"], {}, format="json")
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"
    assert not list(bucket.objects.filter(Prefix=f"uploads/{body['id']}/"))
    assert not list(bucket.objects.filter(Prefix=f"videos/{body['id']}/"))


def test_the_upload_url_refuses_more_than_declared(user_client, clip):
    data = clip(width=640, height=360).read_bytes()
    body = _create(user_client, file_name="trip.mp4", file_size=len(data) - 1)
    response = user_client.put(f"/api/videos/{body['id']}/upload", data, content_type="video/mp4")
    assert response.status_code == 413, response.content
    assert MediaFile.objects.get(video_id=body["id"]).status == "awaiting_upload"


@pytest.mark.services
def test_the_bucket_lifecycle_rule_is_set_and_keeps_other_rules(bucket, settings):
    client = bucket.meta.client
    other = {"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 30}}
    client.put_bucket_lifecycle_configuration(Bucket=bucket.name, LifecycleConfiguration={"Rules": [other]})
    settings.MEDIA_UPLOAD_STAGING_DAYS = 3
    for _ in range(2):  # idempotent
        call_command("media_bucket_lifecycle", stdout=StringIO())
    rules = {
        rule["ID"]: rule for rule in client.get_bucket_lifecycle_configuration(Bucket=bucket.name)["Rules"]
    }
    assert set(rules) == {"logs", storage.LIFECYCLE_RULE_ID}
    staging = rules[storage.LIFECYCLE_RULE_ID]
    assert staging["Filter"] == {"Prefix": "uploads/"}
    assert staging["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 3}
    assert staging["Expiration"] == {"Days": 3}
