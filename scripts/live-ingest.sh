#!/usr/bin/env bash
# Runs one live ingest (nginx + the RTMP module, the packager) in the foreground.
#
#   scripts/live-ingest.sh --rtmp-port 1935 --http-port 8935 \
#       --hooks-url http://127.0.0.1:8000/internal/live/hooks --dir var/live [--origin-url URL] [--listen ADDR]
#
# The hook secret is read from LIVE_HOOK_SECRET (the app must have the same value). The config
# is rendered from streaming/live/ingest/nginx.conf.template into DIR; HLS goes to DIR/hls,
# recordings to DIR/rec. Stops on SIGTERM/SIGINT (nginx, its packagers and their ffmpeg).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TEMPLATE="$REPO_ROOT/streaming/live/ingest/nginx.conf.template"
PACKAGER="$REPO_ROOT/streaming/live/ingest/packager.py"
RTMP_MODULE=${LIVE_RTMP_MODULE:-/usr/lib/nginx/modules/ngx_rtmp_module.so}

usage() {
    echo "usage: $0 --rtmp-port P --http-port H --hooks-url URL --dir DIR [--origin-url URL] [--listen ADDR]" >&2
    exit 2
}

RTMP_PORT="" HTTP_PORT="" HOOKS_URL="" DIR="" ORIGIN_URL="" LISTEN=127.0.0.1
while (($#)); do
    case "$1" in
        --rtmp-port) RTMP_PORT=$2; shift 2 ;;
        --http-port) HTTP_PORT=$2; shift 2 ;;
        --hooks-url) HOOKS_URL=$2; shift 2 ;;
        --dir) DIR=$2; shift 2 ;;
        --origin-url) ORIGIN_URL=$2; shift 2 ;;
        --listen) LISTEN=$2; shift 2 ;;
        *) usage ;;
    esac
done
[[ -n "$RTMP_PORT" && -n "$HTTP_PORT" && -n "$HOOKS_URL" && -n "$DIR" ]] || usage
[[ "$RTMP_PORT" =~ ^[0-9]+$ && "$HTTP_PORT" =~ ^[0-9]+$ ]] || usage
SECRET=${LIVE_HOOK_SECRET:-}
if [[ -z "$SECRET" ]]; then
    echo "live-ingest: LIVE_HOOK_SECRET is not set (the app refuses hook calls without it)" >&2
    exit 2
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [[ ! -x "$NGINX" || ! -f "$RTMP_MODULE" ]]; then
    echo "live-ingest: nginx or its RTMP module is not installed (apt-get install nginx-light libnginx-mod-rtmp)" >&2
    exit 3
fi
PYTHON=${LIVE_PACKAGER_PYTHON:-$(if [[ -x /usr/bin/python3 ]]; then echo /usr/bin/python3; else command -v python3; fi)}
mkdir -p "$DIR/hls" "$DIR/rec" "$DIR/tmp"
DIR="$(cd "$DIR" && pwd)"
ORIGIN_URL=${ORIGIN_URL:-http://$LISTEN:$HTTP_PORT/live}

# The secret and URLs go in files readable by this user only, not on command lines.
umask 077
urlencode() { "$PYTHON" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
HOOK_QUERY="secret=$(urlencode "$SECRET")&origin=$(urlencode "$ORIGIN_URL")"
"$PYTHON" - "$DIR/packager.json" <<PY
import json, sys
json.dump({
    "hooks_url": "$HOOKS_URL",
    "hook_secret": """$SECRET""",
    "origin_url": "$ORIGIN_URL",
    "rtmp_port": $RTMP_PORT,
    "hls_dir": "$DIR/hls",
    "log_file": "$DIR/packager.log",
    "ffmpeg": "$(command -v ffmpeg || echo ffmpeg)",
    "ffprobe": "$(command -v ffprobe || echo ffprobe)",
}, open(sys.argv[1], "w"))
PY
cp "$PACKAGER" "$DIR/packager.py"
USER_LINE=""
if [[ $EUID -eq 0 ]]; then USER_LINE="user root;"; fi
sed -e "s|@USER_LINE@|$USER_LINE|" \
    -e "s|@DIR@|$DIR|g" \
    -e "s|@RTMP_MODULE@|$RTMP_MODULE|g" \
    -e "s|@RTMP_LISTEN@|$LISTEN|g" \
    -e "s|@RTMP_PORT@|$RTMP_PORT|g" \
    -e "s|@HTTP_LISTEN@|$LISTEN|g" \
    -e "s|@HTTP_PORT@|$HTTP_PORT|g" \
    -e "s|@HOOKS_URL@|${HOOKS_URL%/}|g" \
    -e "s|@HOOK_QUERY@|${HOOK_QUERY//&/\\&}|g" \
    -e "s|@UPDATE_SECONDS@|${LIVE_UPDATE_SECONDS:-10}|g" \
    -e "s|@IDLE_PUBLISHER_SECONDS@|${LIVE_IDLE_PUBLISHER_SECONDS:-10}|g" \
    -e "s|@PYTHON@|$PYTHON|g" \
    "$TEMPLATE" >"$DIR/nginx.conf"
"$NGINX" -t -q -p "$DIR/tmp" -c "$DIR/nginx.conf"

"$NGINX" -p "$DIR/tmp" -c "$DIR/nginx.conf" &
NGINX_PID=$!
stop() {
    trap - TERM INT EXIT
    kill -QUIT "$NGINX_PID" 2>/dev/null || true   # graceful: drops publishers, stops packagers
    for _ in $(seq 1 50); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
    kill -TERM "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
    # Any packager's ffmpeg that outlived nginx (its reader blocked): this ingest's only.
    pkill -TERM -f -- "$DIR/hls/" 2>/dev/null || true
    exit 0
}
trap stop TERM INT EXIT
echo "live ingest: rtmp://$LISTEN:$RTMP_PORT/live  origin $ORIGIN_URL  hooks $HOOKS_URL  (pid $NGINX_PID)"
wait "$NGINX_PID"
