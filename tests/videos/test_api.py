"""The catalogue API: create, feed, per-user lists, detail, change, delete."""

from __future__ import annotations

import pytest

from tests.factories import UserFactory, VideoFactory
from videos.models import Video

pytestmark = pytest.mark.django_db

READY = Video.Status.READY  # the feed and other users' lists show only playable videos


def test_create_video_on_both_paths(user_client, user):
    for path in ("/api/videos", "/api/videos/create"):
        response = user_client.post(
            path,
            {"title": "  My trip ", "description": "Mountains", "tags": ["Travel", "travel", "Alps"]},
            format="json",
        )
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["id"].startswith("vid_") and len(body["id"]) >= 20
        assert body["title"] == "My trip"
        assert body["tags"] == ["travel", "alps"]
        assert body["privacy"] == "public"
        assert body["status"] == "awaiting_upload"
        assert body["owner"]["id"] == user.pk
    assert Video.objects.filter(owner=user).count() == 2


def test_create_needs_authentication(api_client):
    response = api_client.post("/api/videos", {"title": "x"}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not Video.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "title"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": 123}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "ok", "privacy": "secret"}, "privacy"),
        ({"title": "ok", "tags": "notalist"}, "tags"),
        ({"title": "ok", "tags": [1, 2]}, "tags"),
        ({"title": "ok", "tags": [f"t{i}" for i in range(21)]}, "tags"),
        ({"title": "ok", "is_adult": "maybe"}, "is_adult"),
        ({"title": "ok", "view_count": 10}, "view_count"),
        ({"title": "ok", "owner": "usr_x"}, "owner"),
    ],
)
def test_create_rejects_bad_input_and_changes_nothing(user_client, payload, field):
    response = user_client.post("/api/videos", payload, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["fields"]
    assert not Video.objects.exists()


def test_malformed_json_is_a_clean_400(user_client):
    response = user_client.generic("POST", "/api/videos", '{"title": ', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"
    assert not Video.objects.exists()


def test_json_array_body_is_rejected(user_client):
    response = user_client.post("/api/videos", [{"title": "x"}], format="json")
    assert response.status_code == 400
    assert not Video.objects.exists()


def test_feed_is_newest_first_and_hides_private_unlisted_and_adult(api_client):
    public_old = VideoFactory(title="old", ready=True)
    public_new = VideoFactory(title="new", ready=True)
    VideoFactory(privacy=Video.Privacy.PRIVATE, ready=True)
    VideoFactory(privacy=Video.Privacy.UNLISTED, ready=True)
    VideoFactory(is_adult=True, ready=True)
    body = api_client.get("/api/videos").json()
    assert [v["id"] for v in body["data"]] == [public_new.pk, public_old.pk]
    assert body["pagination"] == {"total": 2, "page": 1, "limit": 20, "total_pages": 1, "has_more": False}


def test_adult_videos_shown_only_to_viewers_who_opted_in(db):
    from tests.conftest import login_client

    adult = VideoFactory(is_adult=True, ready=True)
    opted_in = UserFactory(show_adult_content=True)
    client = login_client(opted_in)
    assert adult.pk in [v["id"] for v in client.get("/api/videos").json()["data"]]
    assert client.get(f"/api/videos/{adult.pk}").status_code == 200
    viewer = login_client(UserFactory())
    assert viewer.get(f"/api/videos/{adult.pk}").status_code == 404


def test_pagination_envelope(api_client):
    VideoFactory.create_batch(5, ready=True)
    body = api_client.get("/api/videos?page=2&limit=2").json()
    assert len(body["data"]) == 2
    assert body["pagination"] == {"total": 5, "page": 2, "limit": 2, "total_pages": 3, "has_more": True}
    last = api_client.get("/api/videos?page=3&limit=2").json()
    assert len(last["data"]) == 1 and last["pagination"]["has_more"] is False
    beyond = api_client.get("/api/videos?page=9&limit=2").json()
    assert beyond["data"] == [] and beyond["pagination"]["total"] == 5


@pytest.mark.parametrize(
    "query", ["page=0", "page=-1", "page=abc", "limit=0", "limit=101", "limit=1.5", "page=", "limit=%20"]
)
def test_bad_page_or_limit_is_400(api_client, query):
    response = api_client.get(f"/api/videos?{query}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert set(error["fields"]) <= {"page", "limit"}


def test_field_selection_on_list_and_detail(api_client):
    video = VideoFactory(view_count=7, ready=True)
    body = api_client.get("/api/videos?fields=id,title,view_count").json()
    assert body["data"] == [{"id": video.pk, "title": video.title, "view_count": 7}]
    detail = api_client.get(f"/api/videos/{video.pk}?fields=id,owner").json()
    assert detail == {
        "id": video.pk,
        "owner": {
            "id": video.owner.pk,
            "username": video.owner.username,
            "display_name": video.owner.display_name,
        },
    }


def test_field_selection_loads_only_needed_columns(api_client, django_assert_num_queries):
    VideoFactory(description="d" * 4000, ready=True)
    with django_assert_num_queries(2) as captured:
        api_client.get("/api/videos?fields=id,title")
    page_query = captured.captured_queries[-1]["sql"]
    assert "description" not in page_query
    assert '"accounts_user"' not in page_query


def test_unknown_field_is_400_naming_it(api_client):
    VideoFactory()
    response = api_client.get("/api/videos?fields=id,secret_sauce")
    assert response.status_code == 400
    assert "secret_sauce" in response.json()["error"]["fields"]["fields"][0]


def test_list_query_count_is_constant(api_client, django_assert_num_queries):
    VideoFactory.create_batch(3, ready=True)
    with django_assert_num_queries(2):
        assert len(api_client.get("/api/videos?limit=3").json()["data"]) == 3
    VideoFactory.create_batch(40, owner=UserFactory(), ready=True)
    with django_assert_num_queries(2):
        assert len(api_client.get("/api/videos?limit=40").json()["data"]) == 40


def test_user_videos_owner_sees_all_others_see_public(
    user, user_client, other_client, django_assert_num_queries
):
    public = VideoFactory(owner=user, ready=True)
    private = VideoFactory(owner=user, privacy=Video.Privacy.PRIVATE, ready=True)
    unlisted = VideoFactory(owner=user, privacy=Video.Privacy.UNLISTED, ready=True)
    VideoFactory(ready=True)  # someone else's
    own = user_client.get(f"/api/users/{user.pk}/videos").json()
    assert {v["id"] for v in own["data"]} == {public.pk, private.pk, unlisted.pk}
    theirs = other_client.get(f"/api/users/{user.pk}/videos").json()
    assert [v["id"] for v in theirs["data"]] == [public.pk]
    VideoFactory.create_batch(30, owner=user, ready=True)
    with django_assert_num_queries(3):
        other_client.get(f"/api/users/{user.pk}/videos?limit=30")


def test_feed_and_other_users_lists_show_only_ready_videos(user, user_client, other_client, api_client):
    ready = VideoFactory(owner=user, ready=True)
    unfinished = [
        VideoFactory(owner=user, status=status)
        for status in (Video.Status.AWAITING_UPLOAD, Video.Status.PROCESSING, Video.Status.FAILED)
    ]
    for client in (api_client, other_client):
        assert [v["id"] for v in client.get("/api/videos").json()["data"]] == [ready.pk]
        assert [v["id"] for v in client.get(f"/api/users/{user.pk}/videos").json()["data"]] == [ready.pk]
    # The owner still sees (and can follow) their unfinished uploads on their own list.
    own = user_client.get(f"/api/users/{user.pk}/videos").json()["data"]
    assert {v["id"] for v in own} == {ready.pk, *(v.pk for v in unfinished)}
    # Opened by id, an unfinished public video is still there (its page says it is processing).
    assert api_client.get(f"/api/videos/{unfinished[1].pk}").json()["status"] == "processing"


def test_user_videos_unknown_user_is_404(api_client):
    response = api_client.get("/api/users/usr_doesnotexist/videos")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_private_video_is_404_to_everyone_but_its_owner(user, user_client, other_client, api_client):
    video = VideoFactory(owner=user, privacy=Video.Privacy.PRIVATE)
    assert user_client.get(f"/api/videos/{video.pk}").status_code == 200
    for client in (other_client, api_client):
        response = client.get(f"/api/videos/{video.pk}")
        assert response.status_code == 404
        assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}


def test_unlisted_video_visible_by_id(api_client):
    video = VideoFactory(privacy=Video.Privacy.UNLISTED)
    assert api_client.get(f"/api/videos/{video.pk}").json()["id"] == video.pk


def test_owner_can_patch(user, user_client):
    video = VideoFactory(owner=user)
    response = user_client.patch(
        f"/api/videos/{video.pk}", {"title": "Renamed", "privacy": "unlisted"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["title"] == "Renamed"
    video.refresh_from_db()
    assert (video.title, video.privacy) == ("Renamed", "unlisted")


def test_non_owner_cannot_patch_or_delete(user, other_client, api_client):
    video = VideoFactory(owner=user, title="Original")
    assert (
        other_client.patch(f"/api/videos/{video.pk}", {"title": "Hijack"}, format="json").status_code == 403
    )
    assert other_client.delete(f"/api/videos/{video.pk}").status_code == 403
    assert api_client.patch(f"/api/videos/{video.pk}", {"title": "Hijack"}, format="json").status_code == 401
    assert api_client.delete(f"/api/videos/{video.pk}").status_code == 401
    video.refresh_from_db()
    assert video.title == "Original"


def test_non_owner_gets_404_for_private_video_changes(user, other_client):
    video = VideoFactory(owner=user, privacy=Video.Privacy.PRIVATE)
    assert other_client.delete(f"/api/videos/{video.pk}").status_code == 404
    assert Video.objects.filter(pk=video.pk).exists()


def test_staff_can_patch_and_delete(staff_client):
    video = VideoFactory(privacy=Video.Privacy.PRIVATE)
    assert staff_client.patch(f"/api/videos/{video.pk}", {"is_adult": True}, format="json").status_code == 200
    assert staff_client.delete(f"/api/videos/{video.pk}").status_code == 204
    assert not Video.objects.filter(pk=video.pk).exists()


def test_patch_bad_input_changes_nothing(user, user_client):
    video = VideoFactory(owner=user, title="Keep")
    for payload in ({"title": ""}, {"status": "ready"}, {"privacy": 3}, {"title": "ok", "bogus": 1}):
        response = user_client.patch(f"/api/videos/{video.pk}", payload, format="json")
        assert response.status_code == 400, payload
    video.refresh_from_db()
    assert (video.title, video.status) == ("Keep", "awaiting_upload")


def test_delete_by_owner(user, user_client):
    video = VideoFactory(owner=user)
    assert user_client.delete(f"/api/videos/{video.pk}").status_code == 204
    assert user_client.get(f"/api/videos/{video.pk}").status_code == 404


def test_unsupported_method_is_405_json(user_client):
    video = VideoFactory()
    response = user_client.put(f"/api/videos/{video.pk}", {"title": "x"}, format="json")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.django_db(transaction=True)
def test_warm_answers_follow_every_change(api_client, user, user_client):
    """Hot GETs reuse rendered bytes; a change must still show at once, to everyone."""
    video = VideoFactory(owner=user, status="ready", title="First")
    for _ in range(3):  # warm every tier
        first = api_client.get(f"/api/videos/{video.pk}")
        feed = api_client.get("/api/videos")
    assert first.json()["title"] == "First"
    assert [v["title"] for v in feed.json()["data"]] == ["First"]

    assert user_client.patch(f"/api/videos/{video.pk}", {"title": "Second"}, format="json").status_code == 200
    assert api_client.get(f"/api/videos/{video.pk}").json()["title"] == "Second"
    assert [v["title"] for v in api_client.get("/api/videos").json()["data"]] == ["Second"]

    hidden = user_client.patch(f"/api/videos/{video.pk}", {"privacy": "private"}, format="json")
    assert hidden.status_code == 200
    assert api_client.get(f"/api/videos/{video.pk}").status_code == 404
    assert api_client.get("/api/videos").json()["data"] == []
