"""settings.prod refuses insecure defaults and passes ``check --deploy`` when configured."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.processes import ROOT, base_env

pytestmark = pytest.mark.slow

GOOD = {
    "DJANGO_SETTINGS_MODULE": "settings.prod",
    "SECRET_KEY": "k3y-" + "x9Q2mZ7pL4vR8tW1yB6nC3dF5gH0jK" * 2,
    "ALLOWED_HOSTS": "api.example.com",
    "DATABASE_URL": "postgres://videoplatform:videoplatform@127.0.0.1:5432/videoplatform",
    "REDIS_URL": "redis://127.0.0.1:6379/15",
    # A processor's gateway, named like a real one would be.
    "SUBSCRIPTIONS_PAYMENT_GATEWAY": "tests.subscriptions.gateways.RecordingGateway",
}


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=base_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_the_required_variables():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **GOOD)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS"),
        ({"DATABASE_URL": ""}, "DATABASE_URL"),
        ({"REDIS_URL": ""}, "REDIS_URL"),
        # Premium must not be free: the default gateway approves every charge without money.
        ({"SUBSCRIPTIONS_PAYMENT_GATEWAY": ""}, "SUBSCRIPTIONS_PAYMENT_GATEWAY"),
        (
            {"SUBSCRIPTIONS_PAYMENT_GATEWAY": "subscriptions.billing.NoPaymentGateway"},
            "approves every charge",
        ),
        (
            {"SUBSCRIPTIONS_PAYMENT_GATEWAY": "tests.subscriptions.gateways.RenamedFreeGateway"},
            "approves every charge",
        ),
        ({"SUBSCRIPTIONS_PAYMENT_GATEWAY": "tests.subscriptions.gateways.NotAGateway"}, "PaymentGateway"),
        ({"SUBSCRIPTIONS_PAYMENT_GATEWAY": "subscriptions.billing.NoSuchGateway"}, "cannot be used"),
    ],
)
def test_prod_refuses_insecure_defaults(override, reason):
    env = {**GOOD, **override}
    env = {key: value for key, value in env.items() if value}
    result = _manage("check", **env)
    assert result.returncode != 0
    assert "settings.prod refuses to start" in result.stderr
    assert reason in result.stderr


def test_prod_starts_with_the_gateway_that_sells_nothing():
    """With no processor yet, production can run with premium closed rather than free."""
    result = _manage(
        "check", **{**GOOD, "SUBSCRIPTIONS_PAYMENT_GATEWAY": "subscriptions.billing.ClosedPaymentGateway"}
    )
    assert result.returncode == 0, result.stdout + result.stderr
