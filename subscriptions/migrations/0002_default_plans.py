"""The default plans. Idempotent on ``code``: a plan that already exists is left as staff set it."""

from decimal import Decimal

from django.db import migrations

DEFAULT_PLANS = [
    {
        "code": "free",
        "name": "Free",
        "price": Decimal("0.00"),
        "interval": "month",
        "max_resolution": 480,
        "concurrent_streams": 1,
        "features": ["sd_480p", "single_stream"],
        "sort_order": 0,
    },
    {
        "code": "standard",
        "name": "Standard",
        "price": Decimal("9.99"),
        "interval": "month",
        "max_resolution": 720,
        "concurrent_streams": 2,
        "features": ["hd_720p", "two_streams", "premium_videos"],
        "sort_order": 10,
    },
    {
        "code": "premium",
        "name": "Premium",
        "price": Decimal("15.99"),
        "interval": "month",
        "max_resolution": 1080,
        "concurrent_streams": 4,
        "features": ["full_hd_1080p", "four_streams", "premium_videos"],
        "sort_order": 20,
    },
    {
        # Twelve months of Premium for the price of ten.
        "code": "premium-yearly",
        "name": "Premium (yearly)",
        "price": Decimal("159.90"),
        "interval": "year",
        "max_resolution": 1080,
        "concurrent_streams": 4,
        "features": ["full_hd_1080p", "four_streams", "premium_videos", "two_months_free"],
        "sort_order": 30,
    },
]


def create_default_plans(apps, schema_editor):
    Plan = apps.get_model("subscriptions", "Plan")
    db_alias = schema_editor.connection.alias
    for plan in DEFAULT_PLANS:
        defaults = {key: value for key, value in plan.items() if key != "code"}
        Plan.objects.using(db_alias).get_or_create(
            code=plan["code"], defaults={"currency": "USD", **defaults}
        )


class Migration(migrations.Migration):
    dependencies = [
        ("subscriptions", "0001_initial"),
    ]

    # Reversing keeps the rows: subscriptions may point at them (PROTECT), and
    # reversing 0001 drops the table anyway.
    operations = [
        migrations.RunPython(create_default_plans, migrations.RunPython.noop),
    ]
