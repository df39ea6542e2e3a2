"""Plans and subscriptions: what a viewer pays for, and what that lets them watch."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from videoplatform.ids import PrefixedIdField

# The plan everyone has without a subscription; it is listed but never subscribed to.
FREE_PLAN_CODE = "free"


class Plan(models.Model):
    class Interval(models.TextChoices):
        MONTH = "month", "Monthly"
        YEAR = "year", "Yearly"

    id = PrefixedIdField(prefix="plan")
    code = models.SlugField(max_length=40, unique=True, help_text="Stable handle, e.g. 'standard'.")
    name = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=10, decimal_places=2, validators=[MinValueValidator(0)])
    currency = models.CharField(max_length=3, default="USD")
    interval = models.CharField(max_length=5, choices=Interval.choices, default=Interval.MONTH)
    max_resolution = models.PositiveSmallIntegerField(help_text="Highest rendition height, e.g. 720.")
    concurrent_streams = models.PositiveSmallIntegerField(default=1)
    features = models.JSONField(default=list, blank=True)
    is_active = models.BooleanField(default=True)
    sort_order = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sort_order", "price"]

    def __str__(self) -> str:
        return self.name


class Subscription(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        CANCELED = "canceled", "Canceled"
        PAST_DUE = "past_due", "Past due"
        EXPIRED = "expired", "Expired"

    CURRENT_STATUSES = (Status.ACTIVE, Status.PAST_DUE)

    id = PrefixedIdField(prefix="sub")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="subscriptions")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    current_period_start = models.DateTimeField(default=timezone.now)
    current_period_end = models.DateTimeField()
    cancel_at_period_end = models.BooleanField(default=False)
    canceled_at = models.DateTimeField(null=True, blank=True, help_text="When cancellation was asked for.")
    ended_at = models.DateTimeField(
        null=True, blank=True, help_text="When it stopped being current (replaced or expired)."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(status__in=["active", "past_due"]),
                name="subscriptions_one_current_per_user",
                violation_error_message="This user already has a current (active or past due) subscription.",
            ),
        ]
        indexes = [
            # subscription_expire_lapsed: current subscriptions by period end, oldest first.
            models.Index(
                fields=["current_period_end"],
                condition=Q(status__in=["active", "past_due"]),
                name="subscriptions_expiry_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} → {self.plan_id} ({self.status})"
