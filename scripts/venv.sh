#!/usr/bin/env bash
# Creates .venv with the given Python and installs a requirements file into it,
# skipping the install when nothing changed since the last one.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=$1
REQUIREMENTS=$2
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(basename "$REQUIREMENTS")"
digest=$(cat "$REQUIREMENTS" requirements.txt | sha256sum | cut -d' ' -f1)
# requirements-dev.txt includes requirements.txt: a development install satisfies the runtime.
dev_digest=$(cat requirements-dev.txt requirements.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat .venv/.installed-requirements-dev.txt 2>/dev/null)" = "$dev_digest" ]; then
  exit 0
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
  echo "== installing $REQUIREMENTS"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  echo "$digest" >"$stamp"
fi
