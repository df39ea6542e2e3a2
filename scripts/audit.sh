#!/usr/bin/env bash
# Known vulnerabilities in the runtime dependencies: pip-audit (pinned in requirements-dev.txt)
# over requirements.txt and everything it pulls in.
#
#   scripts/audit.sh            exit 0: nothing known (or the advisory service could not be reached:
#                               a WARNING says so, since an offline run proves nothing);
#                               exit 1: a vulnerable version is pinned (each one is listed).
#
# Extra arguments go to pip-audit, e.g. `scripts/audit.sh --vulnerability-service osv`.
set -uo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PIP_AUDIT="$VENV/bin/pip-audit"
REQUIREMENTS=${AUDIT_REQUIREMENTS:-requirements.txt}
if [[ ! -x "$PIP_AUDIT" ]]; then
    echo "audit: $PIP_AUDIT not found; install requirements-dev.txt first" >&2
    exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
report="$work/report.json"

echo "== pip-audit ($REQUIREMENTS)"
"$PIP_AUDIT" --requirement "$REQUIREMENTS" --progress-spinner off --format json --output "$report" "$@" \
    2>"$work/stderr"
status=$?

"$VENV/bin/python" - "$report" "$work/stderr" "$status" <<'PY'
import json
import re
import sys
from pathlib import Path

report, stderr_path, status = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
stderr = stderr_path.read_text(errors="replace")
UNREACHABLE = re.compile(
    r"ConnectionError|Max retries exceeded|Failed to establish a new connection|Temporary failure in name "
    r"resolution|Name or service not known|Network is unreachable|timed out|could not be audited|"
    r"No matching distribution found|Could not fetch URL",
    re.IGNORECASE,
)


def warn(message: str) -> None:
    print(f"WARNING: {message}")
    print("WARNING: the dependency audit proved nothing; run scripts/audit.sh where the service is reachable.")


try:
    dependencies = json.loads(report.read_text())["dependencies"]
except (OSError, ValueError, KeyError):
    if UNREACHABLE.search(stderr):
        warn("pip-audit could not reach the package index or the vulnerability service.")
        print(stderr.strip().splitlines()[-1] if stderr.strip() else "")
        sys.exit(0)
    print(stderr, end="")
    print(f"audit: pip-audit failed (exit {status})")
    sys.exit(status or 2)

vulnerable = [d for d in dependencies if d.get("vulns")]
skipped = [d for d in dependencies if d.get("skip_reason")]
audited = len(dependencies) - len(skipped)
for dependency in vulnerable:
    for vuln in dependency["vulns"]:
        fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed version yet"
        print(f"VULNERABLE {dependency['name']}=={dependency['version']}: {vuln['id']} (fixed in: {fixes})")
if vulnerable:
    print(f"audit: {len(vulnerable)} of {audited} audited packages have known vulnerabilities")
    sys.exit(1)
if audited == 0:
    warn(f"none of the {len(dependencies)} packages could be checked: the vulnerability service is unreachable.")
    sys.exit(0)
if skipped:
    names = ", ".join(d["name"] for d in skipped)
    print(f"WARNING: {len(skipped)} packages could not be audited: {names}")
print(f"audit: no known vulnerabilities in {audited} packages")
PY
