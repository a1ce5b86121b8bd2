#!/usr/bin/env bash
# Build (or refresh) the project virtualenv .venv from requirements-dev.txt, plus the
# collections molecule's docker driver needs, taken from PyPI (Galaxy is not reachable):
# community.docker, community.library_inventory_filtering_v1 and ansible.posix are
# unpacked from the `ansible` wheel into the venv's ansible_collections.
# Re-running is cheap: nothing is reinstalled when the requirements did not change.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
venv=${NETSVC_VENV:-$top/.venv}
ansible_bundle=${NETSVC_ANSIBLE_BUNDLE:-ansible==14.5.0}
log() { printf '[venv] %s\n' "$*" >&2; }

pick_python() {
  # Newest interpreter >= 3.12 (ansible-core 2.21), else >= 3.11 (ansible-core 2.19).
  local c
  local cands=("${NETSVC_PYTHON:-}" python3.13 python3.12)
  for d in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13* "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*; do
    [ -x "$d/bin/python3" ] && cands+=("$d/bin/python3")
  done
  cands+=(python3.11 python3)
  for c in "${cands[@]}"; do
    [ -n "$c" ] || continue
    command -v "$c" >/dev/null 2>&1 || [ -x "$c" ] || continue
    # pyenv shims exist for versions that are not active: make sure it really runs
    if "$c" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1; then
      echo "$c"; return 0
    fi
  done
  log "no Python >= 3.11 found (set NETSVC_PYTHON)"; return 1
}

stamp="$venv/.netsvc-stamp"
want=$(cat "$top/requirements-dev.txt" "$0" | sha256sum | cut -c1-16)
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  log "$venv is up to date"
  exit 0
fi

py=$(pick_python)
log "using $py ($("$py" --version 2>&1))"
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -U pip
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$top/requirements-dev.txt"

site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ ! -d "$site/ansible_collections/community/docker" ]; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  log "fetching $ansible_bundle wheel for community.docker, community.library_inventory_filtering_v1, ansible.posix"
  "$venv/bin/python" -m pip download -q --disable-pip-version-check --no-deps -d "$tmp" "$ansible_bundle"
  "$venv/bin/python" - "$tmp" "$site" <<'PY'
import glob, sys, zipfile
tmp, site = sys.argv[1], sys.argv[2]
wheel = glob.glob(tmp + "/ansible-*.whl")[0]
keep = ("ansible_collections/community/docker/",
        "ansible_collections/community/library_inventory_filtering_v1/",
        "ansible_collections/ansible/posix/",
        "ansible_collections/community/docker-", "ansible_collections/ansible/posix-",
        "ansible_collections/community/library_inventory_filtering_v1-")
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith(keep)]
    z.extractall(site, names)
print("unpacked %d files" % len(names))
PY
fi
echo "$want" >"$stamp"
log "ready: $venv ($("$venv/bin/ansible" --version | head -1))"
