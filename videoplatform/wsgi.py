"""WSGI entry point (gunicorn serves ``videoplatform.wsgi:application``)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")

# Hot API reads are answered in front of Django while what they show is unchanged (docs/performance.md).
from videoplatform.entry.response_cache import wrap

application = wrap(get_wsgi_application())

# The start-up log names the media tools and their versions (or says which one is missing).
from streaming import media_tools  # noqa: E402

media_tools.log_summary()

# The tasks modules, before the first request: the first writes enqueue their jobs by name.
from videoplatform.celery import app as celery_app  # noqa: E402

celery_app.loader.import_default_modules()
