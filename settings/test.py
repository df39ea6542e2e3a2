"""Test runs. The test command points DATABASE_URL and REDIS_URL at real services."""

from .base import *  # noqa: F403
from .base import VAR_DIR, env_str

DEBUG = False
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# The webhook tests run their receivers on loopback (production refuses such targets).
WEBHOOKS_ALLOW_HTTP = True
WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
CELERY_FILESYSTEM_BROKER_DIR = VAR_DIR / "test-celery-broker"
STORAGES = {
    **STORAGES,
    # Tests do not run collectstatic; the manifest storage would refuse unknown files.
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# The suite sends thousands of requests from one address; tests/platform/test_throttling.py
# turns the API throttle on where it is the subject.
API_THROTTLE_ANON_RATE = env_str("API_THROTTLE_ANON_RATE", "off")
API_THROTTLE_USER_RATE = env_str("API_THROTTLE_USER_RATE", "off")
