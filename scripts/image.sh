#!/usr/bin/env bash
# The production image (Dockerfile): built with buildah and smoke-tested from inside itself.
#
#   scripts/image.sh install   install buildah, debootstrap (and kubectl) where missing (idempotent)
#   scripts/image.sh base      the local Debian 12 base image (bootstrapped once, then cached)
#   scripts/image.sh build     build the image (base first when it is missing)
#   scripts/image.sh smoke     run the image's processes as the manifests do (scripts/image_smoke.py)
#   scripts/image.sh report    size, layers, ffmpeg and Python versions, pip-audit of the image
#   scripts/image.sh all       install + build + report + smoke (what scripts/test.sh runs)
#
# Where no registry can be pulled from (CI), the Dockerfile's base is a Debian 12 root made by
# debootstrap from the Debian mirror this machine's apt uses, with Debian's Python 3.11: it is
# bootstrapped once into IMAGE_CACHE_DIR (outside the repository, so a clean clone reuses it) and
# imported as a local image. Elsewhere, IMAGE_BASE=python:3.11-slim builds from the official
# base; the Dockerfile is the same. Builds use buildah's chroot isolation (no daemon, no
# container runtime: this works where containers cannot run) and its layer cache, so a warm
# build only repeats the steps whose inputs changed.
#
# Environment:
#   IMAGE            the tag to build and smoke-test (default localhost/videoplatform/api:ci)
#   IMAGE_BASE       the Dockerfile's BASE_IMAGE (default: the local Debian 12 base)
#   IMAGE_CACHE_DIR  the bootstrapped base's cache (default /var/cache/videoplatform-image)
#   DEBIAN_MIRROR    the mirror to bootstrap from (default: the one in this machine's apt sources)
# Needs root (debootstrap, buildah's storage), like scripts/services.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/videoplatform/api:ci}
LOCAL_BASE=localhost/videoplatform/debian-python:12
IMAGE_BASE=${IMAGE_BASE:-$LOCAL_BASE}
IMAGE_CACHE_DIR=${IMAGE_CACHE_DIR:-/var/cache/videoplatform-image}
SUITE=bookworm
# What the base holds: the same parts as python:3.11-slim (Python 3.11, venv, CA certificates,
# netbase, tzdata), from Debian's packages. A change here re-bootstraps the base.
BASE_PACKAGES=python3,python3-venv,python-is-python3,ca-certificates,netbase,tzdata
BASE_RECIPE_VERSION=1
export BUILDAH_ISOLATION=chroot
export DEBIAN_FRONTEND=noninteractive

log() { printf '== image: %s\n' "$*"; }
die() { printf 'image.sh: %s\n' "$*" >&2; exit 1; }

cmd_install() {
    local missing=()
    command -v buildah >/dev/null 2>&1 || missing+=(buildah)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    log "$(buildah --version)"
    bash k8s/tools/install.sh >/dev/null  # kubectl: the smoke test renders the manifests
}

# The first Debian mirror that serves $SUITE's main component in this machine's apt sources
# (deb822 .sources files and one-line sources.list entries).
debian_mirror() {
    if [[ -n "${DEBIAN_MIRROR:-}" ]]; then
        echo "$DEBIAN_MIRROR"
        return
    fi
    python3 - "$SUITE" <<'PY'
import glob
import sys

suite = sys.argv[1]
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in open(path).read().split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if ":" in line and not line.lstrip().startswith("#"):
                key, value = line.split(":", 1)
                fields[key.strip().lower()] = value.split()
        if (
            "deb" in fields.get("types", [])
            and suite in fields.get("suites", [])
            and "main" in fields.get("components", [])
            and fields.get("enabled", ["yes"])[0] != "no"
        ):
            print(fields["uris"][0])
            sys.exit(0)
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        words = [w for w in line.split() if not w.startswith("[")] if not line.lstrip().startswith("#") else []
        if len(words) >= 4 and words[0] == "deb" and words[2] == suite and "main" in words[3:]:
            print(words[1])
            sys.exit(0)
sys.exit("no Debian mirror for " + suite + " in the apt sources; set DEBIAN_MIRROR")
PY
}

base_digest() {
    printf '%s\n' "$SUITE" "$BASE_PACKAGES" "$BASE_RECIPE_VERSION" "$(debian_mirror)" | sha256sum | cut -c1-16
}

image_exists() { buildah inspect --type image "$1" >/dev/null 2>&1; }

cmd_base() {
    local digest mirror tarball root
    digest=$(base_digest)
    mirror=$(debian_mirror)
    if image_exists "$LOCAL_BASE" \
        && [[ "$(buildah inspect --type image --format '{{index .ImageAnnotations "org.videoplatform.base-recipe"}}' "$LOCAL_BASE" 2>/dev/null)" == "$digest" ]]; then
        log "base $LOCAL_BASE up to date (recipe $digest)"
        return
    fi
    mkdir -p "$IMAGE_CACHE_DIR"
    tarball="$IMAGE_CACHE_DIR/debian-$SUITE-python-$digest.tar"
    if [[ ! -s "$tarball" ]]; then
        root=$(mktemp -d "$IMAGE_CACHE_DIR/root.XXXXXX")
        log "bootstrapping Debian $SUITE from $mirror (once; cached in $IMAGE_CACHE_DIR)"
        debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$root" "$mirror" \
            >"$IMAGE_CACHE_DIR/debootstrap.log" 2>&1 \
            || { tail -n 20 "$IMAGE_CACHE_DIR/debootstrap.log" >&2; rm -rf "$root"; die "debootstrap failed"; }
        # The same suites as the official images (updates and security fixes), then the same
        # trimming as Debian's slim images: no documentation, manual pages or package lists.
        local security=${mirror%/debian}/debian-security
        [[ "$mirror" == */debian ]] || security=http://deb.debian.org/debian-security
        cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror $SUITE main
deb $mirror $SUITE-updates main
deb $security $SUITE-security main
EOF
        cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
        cat >"$root/etc/apt/apt.conf.d/slim" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF
        cp /etc/resolv.conf "$root/etc/resolv.conf"
        mount --bind /proc "$root/proc"
        { chroot "$root" apt-get update -qq && chroot "$root" apt-get upgrade -y -qq; } \
            >>"$IMAGE_CACHE_DIR/debootstrap.log" 2>&1 || { umount "$root/proc"; die "upgrading the base failed"; }
        umount "$root/proc"
        chroot "$root" apt-get clean
        rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/*.log \
            "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old "$root/etc/resolv.conf"
        find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
        rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
        : >"$root/etc/resolv.conf"
        tar --numeric-owner --sort=name -C "$root" -cf "$tarball.part" .
        mv "$tarball.part" "$tarball"
        rm -rf "$root"
    fi
    log "importing $tarball as $LOCAL_BASE"
    local ctr
    ctr=$(buildah from scratch)
    buildah add --quiet "$ctr" "$tarball" / >/dev/null
    buildah config --env LANG=C.UTF-8 --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --cmd python3 --annotation "org.videoplatform.base-recipe=$digest" "$ctr"
    buildah commit --quiet --rm "$ctr" "$LOCAL_BASE" >/dev/null
    # Older bootstraps of another recipe are dropped.
    find "$IMAGE_CACHE_DIR" -maxdepth 1 -name "debian-$SUITE-python-*.tar" -not -name "$(basename "$tarball")" -delete
}

# Build secrets for pip in the build stage only (never stored in a layer): where HTTPS goes
# through an intercepting proxy, the CA bundle pip must trust (PIP_CERT or pip's "cert" setting).
pip_secrets() {
    local ca=${PIP_CERT:-}
    [[ -n "$ca" ]] || ca=$(.venv/bin/pip config get global.cert 2>/dev/null || true)
    if [[ -n "$ca" && -s "$ca" ]]; then
        local conf="$WORK/pip.conf"
        printf '[global]\ncert = /run/secrets/pip-ca\n' >"$conf"
        echo "--secret=id=pip-ca,src=$ca --secret=id=pip.conf,src=$conf"
    fi
}

cmd_build() {
    [[ "$IMAGE_BASE" != "$LOCAL_BASE" ]] || cmd_base
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
    local started epoch
    started=$(date +%s)
    # Reproducible: every timestamp in the image (layers' files, created dates) is the last
    # commit's, so the same sources and base give the same layers.
    epoch=$(git log -1 --format=%ct 2>/dev/null || echo 0)
    log "building $IMAGE from $IMAGE_BASE"
    local args=(--isolation chroot --layers --pull=never --timestamp "$epoch"
        --build-arg "BASE_IMAGE=$IMAGE_BASE" --file Dockerfile)
    # shellcheck disable=SC2207
    args+=($(pip_secrets))
    # The build stage first, tagged: its layers are then not "dangling", so the prune below keeps
    # them for the next build and drops only the layers no tag refers to any more. The full build
    # then finds every build-stage step in the cache.
    buildah build "${args[@]}" --target build --tag "$IMAGE-build-stage" .
    buildah build "${args[@]}" --tag "$IMAGE" .
    buildah rmi --prune >/dev/null 2>&1 || true
    log "built $IMAGE in $(($(date +%s) - started)) s"
}

cmd_report() {
    image_exists "$IMAGE" || die "no image $IMAGE: run scripts/image.sh build"
    local ctr root status=0
    ctr=$(buildah from --pull-never --quiet "$IMAGE")
    root=$(buildah mount "$ctr")
    # shellcheck disable=SC2064
    trap "buildah umount $ctr >/dev/null; buildah rm $ctr >/dev/null" RETURN
    log "size and layers"
    buildah inspect --type image --format '{{range .Docker.History}}{{if not .EmptyLayer}}{{.CreatedBy}}{{"\n"}}{{end}}{{end}}' "$IMAGE" \
        | cut -c1-120 | nl -w2 -s'  '
    printf '   %s layers, %s MB (uncompressed)\n' \
        "$(buildah inspect --type image --format '{{len .OCIv1.RootFS.DiffIDs}}' "$IMAGE")" \
        "$(du -sm --apparent-size "$root" | cut -f1)"
    printf '   largest: %s\n' "$(du -sm "$root"/usr/lib/x86_64-linux-gnu "$root"/opt/venv "$root"/app "$root"/usr/lib/python3.11 2>/dev/null \
        | sort -rn | awk '{sub(".*/merged", "", $2); printf "%s %s MB; ", $2, $1}')"
    log "what the runtime stage must not hold"
    local tool found=()
    for tool in gcc cc make pip pip3; do
        if [[ -e "$root/usr/bin/$tool" || -e "$root/opt/venv/bin/$tool" ]]; then found+=("$tool"); fi
    done
    [[ ! -d "$root/opt/venv/lib/python3.11/site-packages/pip" ]] || found+=("pip in the virtualenv")
    [[ -z "$(ls -A "$root/var/lib/apt/lists" 2>/dev/null | grep -v '^lock$\|^partial$' || true)" ]] || found+=("apt lists")
    [[ -z "$(ls -A "$root/var/cache/apt/archives" 2>/dev/null | grep -v '^lock$\|^partial$' || true)" ]] || found+=("apt archives")
    [[ ! -d "$root/root/.cache" ]] || found+=("/root/.cache")
    local caches
    caches=$(find "$root/app" "$root/opt/venv" -maxdepth 2 -name '.*cache*' -printf '%P ' 2>/dev/null)
    [[ -z "$caches" ]] || found+=("caches: $caches")
    if ((${#found[@]})); then
        echo "   FOUND: ${found[*]}"
        status=1
    else
        echo "   no compiler, pip, package lists, archives or caches"
    fi
    log "the image's Python environment: requirements.txt's pins, then pip-audit over all of it"
    local site frozen
    site=$(echo "$root"/opt/venv/lib/python3*/site-packages)
    frozen=$(mktemp)
    python3 - "$site" requirements.txt "$frozen" <<'PY' || status=1
import re
import sys
from importlib.metadata import distributions

site, requirements, out = sys.argv[1:4]
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()  # noqa: E731
installed = {norm(d.metadata["Name"]): d.version for d in distributions(path=[site])}
wrong = []
for line in open(requirements):
    line = line.split("#")[0].strip()
    if line:
        name, _, version = line.partition("==")
        name = norm(name.split("[")[0])
        if installed.get(name) != version:
            wrong.append(f"{name}: pinned {version}, image has {installed.get(name)}")
with open(out, "w") as f:
    f.writelines(f"{name}=={version}\n" for name, version in sorted(installed.items()))
print(f"   {len(installed)} distributions; requirements.txt pins: {'all as pinned' if not wrong else wrong}")
sys.exit(1 if wrong else 0)
PY
    AUDIT_REQUIREMENTS=$frozen bash scripts/audit.sh --no-deps || status=1
    rm -f "$frozen"
    return $status
}

cmd_smoke() {
    image_exists "$IMAGE" || die "no image $IMAGE: run scripts/image.sh build"
    .venv/bin/python scripts/image_smoke.py --image "$IMAGE"
}

case "${1:-}" in
    install) cmd_install ;;
    base) cmd_install; cmd_base ;;
    build) cmd_install; cmd_build ;;
    report) cmd_report ;;
    smoke) cmd_smoke ;;
    all) cmd_install; cmd_build; cmd_report; cmd_smoke ;;
    *) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
