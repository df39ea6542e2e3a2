"""Sets the media bucket's lifecycle rule for upload staging (S3 only; idempotent)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from streaming import storage


class Command(BaseCommand):
    help = (
        "Adds or updates the bucket lifecycle rule that aborts incomplete multipart uploads and "
        "expires staged uploads under uploads/ after MEDIA_UPLOAD_STAGING_DAYS days (other rules are kept)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if not storage.is_s3():
            raise CommandError("The media storage is not S3: there is no bucket to configure.")
        rule = storage.bucket_lifecycle_ensure(days=settings.MEDIA_UPLOAD_STAGING_DAYS)
        self.stdout.write(
            f"lifecycle rule {rule['ID']}: prefix {rule['Filter']['Prefix']!r}, "
            "incomplete multipart uploads aborted and staged objects expired after "
            f"{settings.MEDIA_UPLOAD_STAGING_DAYS} days"
        )
