"""Settings of the worker processes the job tests start: the test settings, with the email
backend chosen by the environment (the SMTP tests point it at their own server)."""

from settings.base import env_str
from settings.test import *  # noqa: F403

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
