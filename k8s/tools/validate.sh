#!/usr/bin/env bash
# Renders every kustomization and validates the result offline against the Kubernetes
# schemas (kubernetes-validate --strict). KEDA objects are checked against the vendored CRD
# schema, and the rules schemas cannot express, by the tests: pytest tests/k8s
# Usage: k8s/tools/validate.sh [KUBERNETES_VERSION]   (default 1.30.0, the oldest supported)
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=${1:-1.30.0}
VALIDATE=${KUBERNETES_VALIDATE:-.venv/bin/kubernetes-validate}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for dir in overlays/dev overlays/prod monitoring; do
    file="$out/$(echo "$dir" | tr / -).yaml"
    kubectl kustomize "k8s/$dir" > "$file"
    echo "== $dir ($(grep -c '^kind:' "$file") objects)"
    # Custom resources (KEDA) have no bundled schema and are reported as WARN here.
    "$VALIDATE" --strict --quiet -k "$VERSION" "$file"
done
echo "ok"
