"""Loader queries compiled once per shape give exactly the rows the ORM gives."""

from __future__ import annotations

import pytest

from accounts.models import User
from accounts.selectors import PROFILE_FIELDS
from tests.factories import UserFactory, VideoFactory
from videoplatform.cache import rows_by_pk, snapshot
from videos.models import Video

pytestmark = pytest.mark.django_db


def test_rows_by_key_are_the_orms_rows_field_for_field() -> None:
    videos = [
        VideoFactory(tags=["a", "b"], duration=12.5),
        VideoFactory(tags=[], duration=None, privacy=Video.Privacy.PRIVATE),
        VideoFactory(is_adult=True, is_premium=True),
    ]
    ids = [video.pk for video in videos]
    for wanted in ([ids[0]], ids, [ids[1], "vid_none", ids[2]], ["vid_none"]):
        for _ in range(2):  # compiled, then reused
            ours = {video.pk: snapshot(video) for video in rows_by_pk(Video, "default", wanted)}
            orm = {video.pk: snapshot(video) for video in Video.objects.filter(pk__in=wanted)}
            assert ours == orm
    assert rows_by_pk(Video, "default", [ids[0]])[0].tags == ["a", "b"]


def test_rows_by_key_with_some_fields_defer_the_others() -> None:
    users = [UserFactory(display_name="Ann"), UserFactory(display_name="")]
    ids = [user.pk for user in users]
    ours = {user.pk: user for user in rows_by_pk(User, "default", ids, fields=PROFILE_FIELDS)}
    orm = {user.pk: user for user in User.objects.filter(pk__in=ids).only(*PROFILE_FIELDS)}
    assert {pk: snapshot(user) for pk, user in ours.items()} == {
        pk: snapshot(user) for pk, user in orm.items()
    }
    assert ours[ids[0]].get_deferred_fields() == orm[ids[0]].get_deferred_fields()
    assert ours[ids[0]].email == users[0].email  # a deferred field loads on access, as the ORM's
