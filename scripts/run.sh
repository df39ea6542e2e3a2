#!/usr/bin/env bash
# Sets up and runs the platform on the embedded default: SQLite, in-process caches,
# a filesystem Celery broker with a real worker. Needs Python 3.11 and ffmpeg (installed here
# with apt-get when running as root). Demo videos with generated media are uploaded and
# transcoded by the worker; "ready" means the feed lists them and /watch/{id} plays them.
# Ctrl-C stops the web server and the worker.
#   PORT=8000  HOST=127.0.0.1  DEMO_MEDIA=0 (no demo videos)  DEMO_WAIT=600 (seconds)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
PORT=${PORT:-8000}
HOST=${HOST:-127.0.0.1}
export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-settings.dev}
mkdir -p var/log

echo "== media tools"
FFMPEG=${FFMPEG_BINARY:-ffmpeg}
FFPROBE=${FFPROBE_BINARY:-ffprobe}
media_tools_present() { command -v "$FFMPEG" >/dev/null 2>&1 && command -v "$FFPROBE" >/dev/null 2>&1; }
if ! media_tools_present; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "   installing ffmpeg with apt-get (log: var/log/apt.log)"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ffmpeg; } \
      >var/log/apt.log 2>&1 || tail -n 5 var/log/apt.log >&2
  fi
fi
if media_tools_present; then
  echo "   $("$FFMPEG" -hide_banner -version | awk 'NR==1{print $1, $3}'), $("$FFPROBE" -hide_banner -version | awk 'NR==1{print $1, $3}')"
else
  echo "!! ffmpeg/ffprobe not found: install ffmpeg (Debian/Ubuntu: sudo apt-get install ffmpeg) to upload and transcode videos; starting without demo media"
  DEMO_MEDIA=0
fi

bash scripts/venv.sh "$PYTHON" requirements.txt
VENV=.venv/bin

echo "== database"
$VENV/python manage.py migrate --noinput -v0
# Collecting (and compressing) the static files takes a minute of CPU: only when they changed.
STATIC_DIR=${STATIC_ROOT:-$PWD/staticfiles}
static_digest=$( { cat requirements.txt settings/base.py; find ./*/static -type f -print0 2>/dev/null \
  | sort -z | xargs -0 sha256sum; } | sha256sum | cut -d' ' -f1)
if [ -f "$STATIC_DIR/staticfiles.json" ] && [ "$(cat "$STATIC_DIR/.collected" 2>/dev/null)" = "$static_digest" ]; then
  echo "== static files unchanged"
else
  echo "== static files (collected and compressed once)"
  $VENV/python manage.py collectstatic --noinput -v0
  echo "$static_digest" >"$STATIC_DIR/.collected"
fi

PIDS=()
stop() {
  trap - EXIT INT TERM
  kill "${PIDS[@]}" 2>/dev/null || true
  wait "${PIDS[@]}" 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM

echo "== celery worker (log: var/log/worker.log)"
$VENV/celery -A videoplatform worker --loglevel INFO --concurrency 1 \
  -Q default,transcoding,email,notification,recommendation,indexing >var/log/worker.log 2>&1 &
PIDS+=($!)
# The one beat process: it sends the scheduled jobs (docs/jobs.md) to the worker.
echo "== celery beat (log: var/log/beat.log)"
$VENV/celery -A videoplatform beat --loglevel INFO >var/log/beat.log 2>&1 &
PIDS+=($!)

echo "== web server on http://$HOST:$PORT (log: var/log/web.log)"
# One worker process: the embedded default keeps caches in process memory.
GUNICORN_WORKERS=${GUNICORN_WORKERS:-1} PORT=$PORT HOST=$HOST \
  PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-$PWD/var/metrics} \
  $VENV/gunicorn -c gunicorn.conf.py >var/log/web.log 2>&1 &
WEB_PID=$!
PIDS+=("$WEB_PID")
for _ in $(seq 60); do
  $VENV/python -c "import urllib.request; urllib.request.urlopen('http://$HOST:$PORT/health', timeout=2)" \
    2>/dev/null && break
  kill -0 "$WEB_PID" 2>/dev/null || { tail -n 20 var/log/web.log >&2; echo "!! the web server did not start" >&2; exit 1; }
  sleep 1
done

echo "== demo data"
if [ "${DEMO_MEDIA:-1}" = 0 ]; then
  $VENV/python manage.py seed_demo --no-media
else
  $VENV/python manage.py seed_demo --wait "${DEMO_WAIT:-600}" \
    || echo "!! the demo videos are not all ready; the worker's log says why: var/log/worker.log"
fi

BASE="http://$HOST:$PORT"
cat <<TXT

videoplatform is ready on $BASE
  Home           $BASE/   (newest videos; each opens its watch page)
  API feed       $BASE/api/videos
  API docs       $BASE/api/docs
  OpenAPI schema $BASE/api/schema
  Admin          $BASE/admin/   (credentials: var/demo-credentials.txt)
  Health         $BASE/health  $BASE/ready  $BASE/health/detail (staff)
  Metrics        $BASE/metrics
  Logs           var/log/web.log  var/log/worker.log  var/log/beat.log
Press Ctrl-C to stop.

TXT
wait "$WEB_PID"
