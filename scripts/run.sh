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

# Live streaming: the ingest (nginx + the RTMP module) with its hooks pointed at this server.
export LIVE_HOOK_SECRET=${LIVE_HOOK_SECRET:-dev-live-hook-secret}
LIVE_RTMP_PORT=${LIVE_RTMP_PORT:-1935}
LIVE_HTTP_PORT=${LIVE_HTTP_PORT:-8935}
export LIVE_RTMP_URL=${LIVE_RTMP_URL:-rtmp://127.0.0.1:$LIVE_RTMP_PORT/live}
export LIVE_ORIGIN_URL=${LIVE_ORIGIN_URL:-http://127.0.0.1:$LIVE_HTTP_PORT/live}
LIVE_PID=""
if [[ ! -x /usr/sbin/nginx || ! -f /usr/lib/nginx/modules/ngx_rtmp_module.so ]] && [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "== installing the live ingest (nginx-light, libnginx-mod-rtmp)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx-light libnginx-mod-rtmp >var/log/apt-live.log 2>&1 || true
fi
if [[ ! -x /usr/sbin/nginx || ! -f /usr/lib/nginx/modules/ngx_rtmp_module.so ]]; then
  echo "== live streaming is OFF: nginx and libnginx-mod-rtmp are not installed (run as root, or apt-get install them)"
elif curl -sf -o /dev/null -m 2 "http://127.0.0.1:$LIVE_HTTP_PORT/healthz" 2>/dev/null; then
  echo "== live ingest: one already runs on :$LIVE_RTMP_PORT (scripts/services.sh); its hooks must reach this server"
else
  echo "== live ingest on $LIVE_RTMP_URL (log: var/log/live-ingest.log)"
  bash scripts/live-ingest.sh --rtmp-port "$LIVE_RTMP_PORT" --http-port "$LIVE_HTTP_PORT" \
    --hooks-url "http://127.0.0.1:$PORT/internal/live/hooks" --dir var/live >var/log/live-ingest.log 2>&1 &
  LIVE_PID=$!
fi
trap 'kill $WORKER_PID $BEAT_PID $LIVE_PID 2>/dev/null || true; wait $WORKER_PID $BEAT_PID $LIVE_PID 2>/dev/null || true' EXIT INT TERM

cat <<TXT

videoplatform is starting on http://127.0.0.1:$PORT
  API feed       http://127.0.0.1:$PORT/api/videos
  API docs       http://127.0.0.1:$PORT/api/docs
  OpenAPI schema http://127.0.0.1:$PORT/api/schema
  Admin          http://127.0.0.1:$PORT/admin/   (credentials: var/demo-credentials.txt)
  Health         http://127.0.0.1:$PORT/health  http://127.0.0.1:$PORT/ready
  Metrics        http://127.0.0.1:$PORT/metrics
  Live (RTMP)    $LIVE_RTMP_URL/<stream key from POST /api/live>
Press Ctrl-C to stop.

TXT
# One worker process: the embedded default keeps caches in process memory.
GUNICORN_WORKERS=${GUNICORN_WORKERS:-1} PORT=$PORT HOST=${HOST:-127.0.0.1} \
  PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-$PWD/var/metrics} \
  $VENV/gunicorn -c gunicorn.conf.py
