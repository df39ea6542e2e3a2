#!/usr/bin/env bash
# Sets up and runs the platform on the embedded default: SQLite, in-process caches,
# a filesystem Celery broker with a real worker. Needs only Python 3.11 (and ffmpeg for media).
# Ctrl-C stops the web server and the worker.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
PORT=${PORT:-8000}
export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-settings.dev}

bash scripts/venv.sh "$PYTHON" requirements.txt
VENV=.venv/bin

echo "== database"
$VENV/python manage.py migrate --noinput -v0
$VENV/python manage.py collectstatic --noinput -v0
$VENV/python manage.py seed_demo

mkdir -p var/log
echo "== celery worker (log: var/log/worker.log)"
$VENV/celery -A videoplatform worker --loglevel INFO --concurrency 1 \
  -Q default,transcoding,email,notification,recommendation,indexing >var/log/worker.log 2>&1 &
WORKER_PID=$!
# The one beat process: it sends the scheduled jobs (docs/jobs.md) to the worker.
echo "== celery beat (log: var/log/beat.log)"
$VENV/celery -A videoplatform beat --loglevel INFO >var/log/beat.log 2>&1 &
BEAT_PID=$!
trap 'kill $WORKER_PID $BEAT_PID 2>/dev/null || true; wait $WORKER_PID $BEAT_PID 2>/dev/null || true' EXIT INT TERM

cat <<TXT

videoplatform is starting on http://127.0.0.1:$PORT
  API feed       http://127.0.0.1:$PORT/api/videos
  API docs       http://127.0.0.1:$PORT/api/docs
  OpenAPI schema http://127.0.0.1:$PORT/api/schema
  Admin          http://127.0.0.1:$PORT/admin/   (credentials: var/demo-credentials.txt)
  Health         http://127.0.0.1:$PORT/health  http://127.0.0.1:$PORT/ready
  Metrics        http://127.0.0.1:$PORT/metrics
Press Ctrl-C to stop.

TXT
# One worker process: the embedded default keeps caches in process memory.
GUNICORN_WORKERS=${GUNICORN_WORKERS:-1} PORT=$PORT HOST=${HOST:-127.0.0.1} \
  PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-$PWD/var/metrics} \
  $VENV/gunicorn -c gunicorn.conf.py
