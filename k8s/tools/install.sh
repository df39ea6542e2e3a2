#!/usr/bin/env bash
# Installs what the manifest checks (tests/k8s) need beyond requirements-dev.txt: kubectl,
# whose built-in kustomize ("kubectl kustomize") renders the overlays. Idempotent: does
# nothing when a recent enough kubectl is already there. Debian, as root (like CI).
set -euo pipefail

MIN_MINOR=27  # the kustomization features used (labels, patches, $patch: delete) need v5

kubectl_ok() {
    command -v kubectl >/dev/null 2>&1 || return 1
    local minor
    minor=$(kubectl version --client -o json 2>/dev/null \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["clientVersion"]["minor"].rstrip("+"))') \
        || return 1
    [ "$minor" -ge "$MIN_MINOR" ] && kubectl kustomize --help >/dev/null 2>&1
}

if kubectl_ok; then
    echo "kubectl: $(kubectl version --client 2>/dev/null | head -n 2 | tr '\n' ' ')"
    exit 0
fi

# The "kubectl" package comes from the Kubernetes (or Google Cloud) apt repository, which
# the project's machine image has configured. Debian's own "kubernetes-client" is 1.20:
# too old for these kustomizations.
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq kubectl

if ! kubectl_ok; then
    echo "k8s/tools/install.sh: no kubectl >= 1.$MIN_MINOR could be installed" >&2
    exit 1
fi
echo "kubectl: $(kubectl version --client 2>/dev/null | head -n 2 | tr '\n' ' ')"
