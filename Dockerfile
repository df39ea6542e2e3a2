# syntax=docker/dockerfile:1
# The application image: the API (gunicorn), the Celery workers and beat, and the migration
# Job all run it. Multi-stage: dependencies and static files are built in the first stage;
# the runtime stage adds ffmpeg (transcoding) and nginx with the RTMP module (the live ingest,
# docs/live.md) and runs as an unprivileged user (uid 10001, as
# the pods' securityContext expects) on a read-only root filesystem.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt
WORKDIR /app
COPY . .
# Static files (admin, API docs) are collected into the image and served by WhiteNoise.
RUN DJANGO_SETTINGS_MODULE=settings.dev VAR_DIR=/tmp/build python manage.py collectstatic --noinput \
    && python -m compileall -q /app

FROM python:3.11-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg nginx-light libnginx-mod-rtmp \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=settings.prod
COPY --from=build /opt/venv /opt/venv
# Owned by root and not writable by the app user: code cannot be changed at run time.
COPY --from=build /app /app
WORKDIR /app
USER 10001:10001
EXPOSE 8000
CMD ["gunicorn", "-c", "gunicorn.conf.py"]
