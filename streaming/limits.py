"""What one uploader may send: the limits of their plan, and their daily quotas.

Plan limits (``UPLOAD_PLAN_LIMITS``, by plan code): the longest video and the largest source
resolution, checked once the file is probed (403). Daily quotas (``UPLOADS_PER_DAY``,
``TRANSCODE_MINUTES_PER_DAY``, or a plan's own): uploads begun and minutes of accepted video over
the last 24 hours (429 with Retry-After). They are counted from the uploader's media files in the
database (no counter to drift, and no Redis needed), under a lock on the uploader's row held until
the intake's transaction commits, so that concurrent uploads of one user are counted one after the
other. Callers run inside a transaction; a refusal raises before anything is written.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, Min, Q, Sum
from django.utils import timezone

from subscriptions.selectors import viewer_entitlement
from videoplatform.errors import DomainError

from .models import MediaFile
from .probe import ProbeResult

WINDOW = timedelta(hours=24)


class PlanLimitExceeded(DomainError):
    status_code = 403
    code = "plan_limit"
    default_message = "Your plan does not allow this upload."


class PlanDurationLimit(PlanLimitExceeded):
    code = "plan_duration_limit"


class PlanResolutionLimit(PlanLimitExceeded):
    code = "plan_resolution_limit"


class QuotaExceeded(DomainError):
    status_code = 429
    code = "quota_exceeded"
    default_message = "Your daily quota is used up."

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class UploadQuotaExceeded(QuotaExceeded):
    code = "upload_quota_exceeded"


class TranscodeQuotaExceeded(QuotaExceeded):
    code = "transcode_quota_exceeded"


def _plan(owner: Any) -> tuple[str, dict[str, int]]:
    code = viewer_entitlement(owner).plan_code
    return code, settings.UPLOAD_PLAN_LIMITS.get(code, {})


def _lock_owner(owner: Any) -> None:
    """Serialises the quota checks of one uploader until the caller's transaction ends."""
    get_user_model().objects.select_for_update().filter(pk=owner.pk).values_list("pk").first()


def _recent_stats(owner: Any, media_file: MediaFile | None, now: datetime) -> dict[str, Any]:
    """Both quotas' figures over the uploader's media files of the last 24 hours (``media_file``,
    the one being checked, left out), in one statement: how many (``count``) and the oldest of
    them (``oldest``); seconds of accepted video, those with a duration (``used``), and the
    oldest of those (``oldest_accepted``)."""
    files = MediaFile.objects.filter(video__owner_id=owner.pk, created_at__gt=now - WINDOW)
    if media_file is not None and media_file.pk:
        files = files.exclude(pk=media_file.pk)
    accepted = Q(duration__isnull=False)
    return files.aggregate(
        count=Count("pk"),
        oldest=Min("created_at"),
        used=Sum("duration", filter=accepted),
        oldest_accepted=Min("created_at", filter=accepted),
    )


def _retry_after(oldest: datetime | None, now: datetime) -> int:
    return math.ceil(((oldest or now) + WINDOW - now).total_seconds())


def _minutes(seconds: float) -> str:
    return f"{math.ceil(seconds / 60)} minutes"


def _check_plan(owner: Any, result: ProbeResult) -> None:
    code, limits = _plan(owner)
    max_duration = limits.get("max_duration")
    if max_duration is not None and result.duration > max_duration:
        raise PlanDurationLimit(
            f"The {code} plan accepts videos up to {_minutes(max_duration)}; "
            f"this one lasts {_minutes(result.duration)}."
        )
    max_resolution = limits.get("max_resolution")
    resolution = min(result.width, result.height)
    if max_resolution is not None and resolution > max_resolution:
        raise PlanResolutionLimit(
            f"The {code} plan accepts sources up to {max_resolution}p; this one is {resolution}p "
            f"({result.width}x{result.height})."
        )


def _check_uploads(recent: dict[str, Any], limits: dict[str, int], now: datetime) -> None:
    allowed = limits.get("uploads_per_day", settings.UPLOADS_PER_DAY)
    if recent["count"] >= allowed:
        raise UploadQuotaExceeded(
            f"At most {allowed} uploads per 24 hours.", retry_after=_retry_after(recent["oldest"], now)
        )


def _check_minutes(recent: dict[str, Any], limits: dict[str, int], adding: float, now: datetime) -> None:
    allowed = limits.get("transcode_minutes_per_day", settings.TRANSCODE_MINUTES_PER_DAY) * 60
    used = recent["used"] or 0.0
    if used + adding > allowed or (adding == 0 and used >= allowed):
        raise TranscodeQuotaExceeded(
            f"At most {_minutes(allowed)} of video per 24 hours: {_minutes(used)} used"
            + (f", this one adds {_minutes(adding)}." if adding else "."),
            retry_after=_retry_after(recent["oldest_accepted"], now),
        )


def upload_start_check(*, owner: Any, media_file: MediaFile | None = None) -> None:
    """Before an upload target is handed out: the upload quota, and minutes left to transcode."""
    _check_quotas(owner, media_file, 0.0)


def upload_accept_check(*, owner: Any, media_file: MediaFile | None, result: ProbeResult) -> None:
    """Before a probed file is accepted for transcoding: the plan's limits and both quotas."""
    _check_plan(owner, result)
    _check_quotas(owner, media_file, result.duration)


def _check_quotas(owner: Any, media_file: MediaFile | None, adding: float) -> None:
    """Both daily quotas, under the lock on the uploader's row, ``adding`` seconds of video."""
    _lock_owner(owner)
    now = timezone.now()
    _, limits = _plan(owner)
    recent = _recent_stats(owner, media_file, now)
    _check_uploads(recent, limits, now)
    _check_minutes(recent, limits, adding, now)
