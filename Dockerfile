# syntax=docker/dockerfile:1
# The application image: the API (gunicorn), the Celery workers and beat, and the migration
# Job all run it (k8s/base). Multi-stage: dependencies and static files are built in the first
# stage; the runtime stage adds ffmpeg (transcoding) and runs as an unprivileged user (uid 10001,
# as the pods' securityContext expects) on a read-only root filesystem.
#
# BASE_IMAGE: any Debian 12 image with Python 3.11 and its venv module. The default is the
# official one; scripts/image.sh builds from a locally bootstrapped Debian 12 base where no
# registry can be reached. Nothing else differs. docs/deployment.md, "The image".
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.txt /tmp/requirements.txt
# Exact pins only (requirements.txt). Behind a TLS-intercepting proxy or a private index, pass
# pip's configuration as build secrets (never stored in a layer): pip.conf, and pip-ca for its
# "cert = /run/secrets/pip-ca". Then pip and setuptools leave the environment: the runtime
# needs neither, and they would only carry their own vulnerabilities into it.
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    --mount=type=secret,id=pip-ca \
    pip install --no-compile -r /tmp/requirements.txt \
    && pip uninstall --yes --quiet pip setuptools
WORKDIR /app
COPY . .
# Static files (admin, API docs) are collected into the image and served by WhiteNoise.
# Bytecode is compiled here, hash-checked rather than dated, so the image is reproducible and
# nothing is written at run time (the root filesystem is read-only).
RUN DJANGO_SETTINGS_MODULE=settings.dev VAR_DIR=/tmp/build python manage.py collectstatic --noinput -v 0 \
    && python -m compileall -q --invalidation-mode checked-hash /app /opt/venv \
    && rm -rf /tmp/build

FROM ${BASE_IMAGE} AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
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
