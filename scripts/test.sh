#!/usr/bin/env bash
# Sets up and runs the whole test suite against real services, with every quality gate:
# ruff (lint + format), mypy, makemigrations --check, pytest with coverage, and the production
# image built and smoke-tested (scripts/image.sh all).
# Extra arguments go to pytest (e.g. scripts/test.sh tests/videos -x); such a partial run skips
# the image. IMAGE_CHECK=1 forces the image gate, IMAGE_CHECK=0 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
bash scripts/venv.sh "$PYTHON" requirements-dev.txt
VENV=.venv/bin

echo "== services"
bash scripts/services.sh up
bash k8s/tools/install.sh
bash streaming/tools/install-browser.sh

export DJANGO_SETTINGS_MODULE=settings.test
export DATABASE_URL=${TEST_DATABASE_URL:-postgres://videoplatform:videoplatform@127.0.0.1:5432/videoplatform}
export REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}
export VAR_DIR=${VAR_DIR:-$PWD/var/test}
mkdir -p "$VAR_DIR"

echo "== ruff"
$VENV/ruff check .
$VENV/ruff format --check .
echo "== mypy"
$VENV/mypy .
echo "== dependency audit"
bash scripts/audit.sh
echo "== migrations"
$VENV/python manage.py makemigrations --check --dry-run
echo "== OpenAPI schema"
$VENV/python manage.py spectacular --validate --fail-on-warn --file /dev/null
echo "== pytest"
$VENV/pytest --cov --cov-report=term:skip-covered "$@"
if [[ "${IMAGE_CHECK:-$(($# == 0))}" == 1 ]]; then
    echo "== image (build, report, smoke test)"
    bash scripts/image.sh all
fi
