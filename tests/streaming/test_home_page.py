"""The home page: the newest public videos with their posters, each linking to its watch page,
and the platform's own links. Plain HTML from this server, nothing from elsewhere."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.factories import VideoFactory
from videos.models import Video

pytestmark = pytest.mark.django_db


def _posters(html: str) -> dict[str, str]:
    """watch link -> poster URL of each listed video."""
    found = {}
    for item in re.findall(r'<li class="video">(.*?)</li>', html, re.S):
        watch = re.search(r'href="(/watch/[^"]+)"', item)
        poster = re.search(r'<img class="poster" src="([^"]+)"', item)
        assert watch, item
        found[watch.group(1)] = poster.group(1).replace("&amp;", "&") if poster else ""
    return found


def test_home_lists_ready_public_videos_newest_first_with_posters(client: Client, ready_video):
    older = ready_video(title="Older clip", privacy=Video.Privacy.PUBLIC)
    newer = ready_video(title="Newer clip", privacy=Video.Privacy.PUBLIC)
    premium = ready_video(title="Premium clip", privacy=Video.Privacy.PUBLIC, is_premium=True)
    ready_video(title="Private clip", privacy=Video.Privacy.PRIVATE)
    VideoFactory(title="Still processing", status=Video.Status.PROCESSING)

    response = client.get("/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "Private clip" not in html and "Still processing" not in html
    assert html.index("Premium clip") < html.index("Newer clip") < html.index("Older clip")

    posters = _posters(html)
    assert set(posters) == {f"/watch/{v.pk}" for v in (older, newer, premium)}
    assert posters[f"/watch/{premium.pk}"] == ""  # a premium poster is for subscribers
    for video in (older, newer):
        url = posters[f"/watch/{video.pk}"]
        assert url.startswith("/media/s/") and url.endswith("/poster.jpg"), url
        image = client.get(url)
        assert image.status_code == 200
        assert image["Content-Type"] == "image/jpeg"
        assert image.getvalue()[:3] == b"\xff\xd8\xff"  # a JPEG
        assert client.get(f"/watch/{video.pk}").status_code == 200


def test_home_links_answer_and_nothing_comes_from_elsewhere(client: Client, staff_user):
    html = client.get("/").content.decode()
    links = re.findall(r'href="([^"]+)"', html)
    for wanted in ("/api/docs", "/api/schema", "/admin/", "/health", "/health/detail", "/metrics"):
        assert wanted in links, wanted
    # Every URL the page loads or links to is this server's own.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "No videos are ready yet" in html
    for path in ("/api/docs", "/api/schema", "/health", "/metrics"):
        assert client.get(path).status_code == 200, path
    assert client.get("/admin/").status_code == 302  # to the admin's login
    client.force_login(staff_user)
    assert client.get("/health/detail").status_code == 200
