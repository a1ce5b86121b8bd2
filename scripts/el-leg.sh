#!/usr/bin/env bash
# The EL leg (issue 14): CentOS/RHEL hosts as they are.
#  1. a controller with ansible-core 2.16 (the last that manages Python 3.6 and 2.7 hosts), in
#     its own venv;
#  2. an EL-shaped systemd host whose only Python is 3.6 (/usr/libexec/platform-python) and an
#     EL-shaped supervisord host (/etc/supervisord.d/*.ini), both scripts/testbed.sh images -
#     Debian 12 userland in EL shape, not RHEL;
#  3. playbooks/harden_restart.yml for real (crash test on every host), tests/el/verify.yml,
#     playbooks/audit.yml (tests/el/audited.yml), playbooks/rollback.yml, and a Python 2.7
#     interpreter refused cleanly by the pre-flight;
#  4. the host-side unit tests under Python 3.6.
# Where no Python 3.6 exists the leg is skipped with a message, not failed.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
venv=${NETSVC_VENV216:-$top/.cache/venv-216}
run_id=${NETSVC_RUN_ID:-el-$$}
net=netsvc-el
log() { printf '[el-leg] %s\n' "$*" >&2; }

find_py() {
  local v=$1 c
  for c in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/python"$v" "python$v"; do
    command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys' >/dev/null 2>&1 && { echo "$c"; return; }
  done
}

py36=$(find_py 3.6)
if [ -z "$py36" ]; then
  log "SKIPPED: no Python 3.6 interpreter here (pyenv's versions folder or PATH): the EL leg needs one"
  exit 0
fi

# 1. the controller: ansible-core 2.16 on a Python it supports (3.10-3.12)
ctl=""
for v in 3.12 3.11 3.10; do ctl=$(find_py "$v"); [ -n "$ctl" ] && break; done
[ -n "$ctl" ] || { log "no Python 3.10-3.12 for an ansible-core 2.16 controller"; exit 1; }
want=$(printf '%s|%s' "$ctl" "$(cat "$0")" | sha256sum | cut -c1-16)
if [ "$(cat "$venv/.netsvc-stamp" 2>/dev/null)" != "$want" ]; then
  log "building $venv (ansible-core 2.16 on $("$ctl" --version 2>&1))"
  rm -rf "$venv"
  if ! "$ctl" -m venv "$venv" \
      || ! "$venv/bin/python" -m pip install -q --disable-pip-version-check "ansible-core==2.16.*" jmespath; then
    log "cannot build $venv"; exit 1
  fi
  tmp=$(mktemp -d)
  # community.docker for the docker connection: from the ansible 9 bundle (= ansible-core 2.16)
  "$venv/bin/python" -m pip download -q --disable-pip-version-check --no-deps -d "$tmp" "ansible==9.*" \
    || { log "cannot download the ansible 9 bundle"; rm -rf "$tmp"; exit 1; }
  "$venv/bin/python" - "$tmp" "$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" <<'PY'
import glob, sys, zipfile
keep = ("ansible_collections/community/docker/", "ansible_collections/community/library_inventory_filtering_v1/")
with zipfile.ZipFile(sorted(glob.glob(sys.argv[1] + "/ansible-*.whl"))[-1]) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith(keep)])
PY
  rm -rf "$tmp"
  echo "$want" >"$venv/.netsvc-stamp"
fi
log "controller: $("$venv/bin/ansible" --version | head -1)"

# 2. the hosts
scripts/testbed.sh images el8-systemd el8-supervisord || exit 1
# shellcheck disable=SC2317 # invoked by the EXIT trap below
cleanup() {
  local ids=()
  mapfile -t ids < <(docker ps -aq --filter "label=netsvc.run=$run_id" 2>/dev/null || true)
  [ ${#ids[@]} -eq 0 ] || docker rm -f "${ids[@]}" >/dev/null 2>&1
  docker network rm "$net" >/dev/null 2>&1 || true
  rm -rf "$work"
}
work=$(mktemp -d)
trap cleanup EXIT
docker network create "$net" >/dev/null 2>&1 || true
scripts/testbed.sh run netsvc-el8 localhost/netsvc-el8-systemd:latest "netsvc.run=$run_id" "$net" || exit 1
scripts/testbed.sh run netsvc-el8-sup localhost/netsvc-el8-supervisord:latest "netsvc.run=$run_id" "$net" \
  /usr/bin/supervisord -n -c /etc/supervisord.conf || exit 1

mkdir -p "$work/collections/ansible_collections/netsvc"
ln -s "$top" "$work/collections/ansible_collections/netsvc/resilience"
cat >"$work/inventory.yml" <<'INV'
all:
  vars:
    ansible_connection: community.docker.docker
    ansible_python_interpreter: /usr/libexec/platform-python
  children:
    el_systemd:
      hosts:
        netsvc-el8:
          netsvc_services:
            - {name: netsvc-echo.service, ports: [7070]}
    el_supervisord:
      hosts:
        netsvc-el8-sup:
          # defined in a shared file (tests/el/prepare.yml): no command here, its own section has it
          netsvc_services:
            - {name: web, ports: [7071], backend: supervisord}
INV
export ANSIBLE_COLLECTIONS_PATH="$work/collections" ANSIBLE_HOME="$work/home" ANSIBLE_PIPELINING=true \
  ANSIBLE_FORCE_COLOR=false ANSIBLE_STDOUT_CALLBACK=default ANSIBLE_HOST_KEY_CHECKING=false \
  NETSVC_AUDIT_DIR="$work/audit" PATH="$venv/bin:$PATH"
play() { log "ansible-playbook $*"; "$venv/bin/ansible-playbook" -i "$work/inventory.yml" "$@"; }

rc=0
t0=$SECONDS
play tests/el/prepare.yml || rc=1
[ $rc = 0 ] && { play playbooks/harden_restart.yml -e netsvc_crash_test=all || rc=1; }
[ $rc = 0 ] && { play tests/el/verify.yml || rc=1; }
[ $rc = 0 ] && { play playbooks/audit.yml && play tests/el/audited.yml || rc=1; }
[ $rc = 0 ] && { play playbooks/rollback.yml && play tests/el/rolled_back.yml || rc=1; }
# harden_restart's options for its one call, as ansible-core 2.16 templates them (no host)
play tests/rollout/options.yml || rc=1
log "hosts: $((SECONDS - t0)) s"

# the rollout's gates on ansible-core 2.16 (issue 27): an unreachable or failing canary, a later
# batch failing, a host without netsvc_services - against the EL-shaped systemd host
t0=$SECONDS
"$venv/bin/python" tests/rollout/gates.py --playbook "$venv/bin/ansible-playbook" --host netsvc-el8 \
  --python /usr/libexec/platform-python || rc=1
log "gates: $((SECONDS - t0)) s"

# 4. the host-side unit tests under Python 3.6 (module_utils + modules), with 2.16's module_utils.
# The machine's pip config (local wheel folders) is ignored: 3.6's old pip picks releases there
# that need a newer Python.
lib="$top/.cache/compat/ansible-core-2.16"
[ -d "$lib/ansible/module_utils" ] || scripts/compat.sh >/dev/null 2>&1
v36="$top/.cache/venv-py36-tests"
if [ ! -x "$v36/bin/pytest" ]; then
  if ! "$py36" -m venv "$v36" \
      || ! PIP_CONFIG_FILE=/dev/null "$v36/bin/python" -m pip install -q --disable-pip-version-check \
        "pytest<7.1" "pytest-mock<3.7"; then
    log "cannot build the Python 3.6 test venv"; exit 1
  fi
fi
stage="$work/stage"
mkdir -p "$stage/ansible_collections/netsvc"
ln -s "$top" "$stage/ansible_collections/netsvc/resilience"
log "unit tests under $("$py36" --version 2>&1)"
(cd "$stage/ansible_collections/netsvc/resilience" && PYTHONPATH="$lib:$stage" "$v36/bin/pytest" -q -p no:cacheprovider \
  tests/unit/plugins/module_utils tests/unit/plugins/modules) || rc=1
exit $rc
