#!/usr/bin/env bash
# Host code on old interpreters (issue 14), without a host:
#  - every module and module_utils file compiles on Python 3.6 and 2.7;
#  - every module, run as AnsiballZ would run it under Python 2.7 (ansible-core 2.16's
#    module_utils, the last to support 2.7), imports and fails with one clear message naming
#    the interpreter and the fix - never a traceback;
#  - under Python 3.6 the same modules get past that check.
# Interpreters come from pyenv's versions folder (or PATH); a missing one is skipped, loudly.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cache="$top/.cache/compat"
rc=0
log() { printf '[compat] %s\n' "$*" >&2; }

find_py() {  # find_py 3.6 -> path or empty
  local v=$1 c
  for c in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/python"$v" "python$v"; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys' >/dev/null 2>&1; then echo "$c"; return; fi
  done
}

# ansible-core 2.16's module_utils (from its wheel, no install)
lib="$cache/ansible-core-2.16"
if [ ! -d "$lib/ansible/module_utils" ]; then
  mkdir -p "$cache/dl"
  "${NETSVC_VENV:-$top/.venv}/bin/python" -m pip download -q --disable-pip-version-check --no-deps \
    -d "$cache/dl" "ansible-core==2.16.*" || { log "cannot download ansible-core 2.16"; exit 1; }
  "${NETSVC_VENV:-$top/.venv}/bin/python" - "$cache/dl" "$lib" <<'PY'
import glob, sys, zipfile
wheel = sorted(glob.glob(sys.argv[1] + "/ansible_core-2.16*.whl"))[-1]
with zipfile.ZipFile(wheel) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith("ansible/")])
PY
fi

# the collection as AnsiballZ lays it out for Python 2 (packages need __init__.py)
tree=$(mktemp -d); trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/ansible_collections/netsvc/resilience"
cp -r "$top/plugins" "$tree/ansible_collections/netsvc/resilience/"
find "$tree" -type d -exec touch {}/__init__.py \;
mods="$tree/ansible_collections/netsvc/resilience/plugins/modules"

declare -A ARGS=(
  [harden]='{"units": {"name": "x.service"}}' [undo]='{}' [host_check]='{}' [prestart_hook]='{"payload": {}, "services": []}' [restart_probe]='{"name": "x.service", "port": 80}'
  [service_restart_policy]='{"name": "x.service"}' [socket_cleanup]='{"ports": [80]}' [sysctl_tcp]='{"apply": "live"}'
)

for v in 3.6 2.7; do
  py=$(find_py "$v")
  if [ -z "$py" ]; then log "SKIPPED: no Python $v interpreter on this machine"; continue; fi
  log "Python $v: $py"
  "$py" - "$top"/plugins/modules/*.py "$top"/plugins/module_utils/*.py "$top"/plugins/module_utils/*/*.py <<'PY' || rc=1
import sys
bad = 0
for path in sys.argv[1:]:
    try:
        compile(open(path).read(), path, "exec")
    except SyntaxError as e:
        bad += 1
        print("  does not compile: %s: %s" % (path, e))
sys.exit(1 if bad else 0)
PY
  [ "$v" = 2.7 ] || continue
  for m in "${!ARGS[@]}"; do
    out=$(echo "{\"ANSIBLE_MODULE_ARGS\": ${ARGS[$m]}}" | PYTHONPATH="$lib:$tree" "$py" "$mods/$m.py" 2>&1)
    if grep -q '"failed": true' <<<"$out" && grep -q "is too old for netsvc.resilience" <<<"$out" \
        && grep -q "ansible_python_interpreter" <<<"$out" && ! grep -q "Traceback" <<<"$out"; then
      log "  $m under $v: refused cleanly"
    else
      log "  $m under $v: NOT a clean refusal: $(head -c 400 <<<"$out")"; rc=1
    fi
  done
done
exit $rc
