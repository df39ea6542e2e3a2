"""Demo data for a newcomer: an admin, a few users and public videos. Safe to run again."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from videos.models import Video
from videos.services import video_create

DEMO_PASSWORD = "demo-password-123"  # noqa: S105 - a public demo account, documented

DEMO_VIDEOS = [
    ("Big Buck Bunny trailer", ["animation", "open-movie"]),
    ("Sunrise over the Alps", ["travel", "nature"]),
    ("Making sourdough at home", ["food", "howto"]),
    ("Ten minutes of rain", ["ambient", "nature"]),
    ("Intro to adaptive bitrate streaming", ["tech", "video"]),
]


class Command(BaseCommand):
    help = "Create demo users and videos (idempotent). Writes the admin password to var/demo-credentials.txt."

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        credentials = settings.VAR_DIR / "demo-credentials.txt"
        with transaction.atomic():
            admin = user_model._default_manager.filter(username="admin").first()
            if admin is None:
                password = secrets.token_urlsafe(12)
                user_model._default_manager.create_superuser(  # type: ignore[attr-defined]
                    username="admin", email="admin@example.com", password=password, display_name="Admin"
                )
                credentials.parent.mkdir(parents=True, exist_ok=True)
                credentials.write_text(f"username: admin\npassword: {password}\n")
                self.stdout.write(f"[1/2] admin created (password in {credentials})")
            else:
                self.stdout.write("[1/2] admin exists")

            demo = user_model._default_manager.filter(username="demo").first()
            if demo is None:
                demo = user_model._default_manager.create_user(  # type: ignore[attr-defined]
                    username="demo",
                    email="demo@example.com",
                    password=DEMO_PASSWORD,
                    display_name="Demo",
                )
            created = 0
            for index, (title, tags) in enumerate(DEMO_VIDEOS, start=1):
                if not Video.objects.filter(owner=demo, title=title).exists():
                    video_create(owner=demo, title=title, tags=tags, description=f"Demo video {index}.")
                    created += 1
                self.stdout.write(f"\r[2/2] demo videos {index}/{len(DEMO_VIDEOS)}", ending="")
            self.stdout.write(f"\n      {created} created; demo user 'demo' / '{DEMO_PASSWORD}'")
