#!/usr/bin/env bash
# Run ansible-test offline against a staged copy of the collection.
#   scripts/ansible-test.sh sanity|units [ansible-test options...]
# ansible-test needs the collection under ansible_collections/NS/NAME: the tree is synced to
# .cache/ac/ansible_collections/netsvc/resilience. It bootstraps pip in its venvs with a
# get-pip script from a host we cannot reach; a stand-in in ~/.ansible/test/cache that runs
# pip from the pip wheel (from PyPI) does the same job.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
venv=${NETSVC_VENV:-$top/.venv}
py="$venv/bin/python"
stage="$top/.cache/ac/ansible_collections/netsvc/resilience"

at_dir=$("$py" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')
pip_ver=$(sed -n "s/^ *pip='\([0-9.]*\)',/\1/p" "$at_dir/_internal/python_requirements.py" | head -1)
cache="$HOME/.ansible/test/cache"
standin="$cache/get_pip_${pip_ver//./_}.py"
standin_version=2  # bump when the stand-in below changes
grep -q "stand-in v$standin_version" "$standin" 2>/dev/null || rm -f "$standin"
if [ -n "$pip_ver" ] && [ ! -f "$standin" ]; then
  mkdir -p "$cache"
  "$py" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d "$cache" "pip==$pip_ver"
  cat >"$standin" <<PY
# Offline stand-in v$standin_version for get-pip.py ($pip_ver), written by netsvc.resilience scripts/ansible-test.sh:
# runs "pip install ARGS" from the pip wheel downloaded next to this file.
import glob, os, sys
wheel = glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "pip-$pip_ver-*.whl"))[0]
sys.path.insert(0, wheel)
from pip._internal.cli.main import main
# get-pip's own flags (--no-setuptools, --no-wheel) are not pip install options
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install"] + args))
PY
fi

mkdir -p "$stage"
# rsync is not always installed: a tar pipe keeps the copy exact (deleted files go too)
find "$stage" -mindepth 1 -maxdepth 1 ! -name tests -exec rm -rf {} +
rm -rf "$stage/tests"
tar -C "$top" --exclude=./.venv --exclude=./.cache --exclude=./.git --exclude=./.ansible \
    --exclude='*/__pycache__' --exclude=./tests/output --exclude=./.ruff_cache \
    --exclude=./.pytest_cache --exclude=./demo/out -cf - . | tar -C "$stage" -xf -
# sanity checks only what git knows about; give the stage a git view of the same files
if command -v git >/dev/null 2>&1 && git -C "$top" rev-parse >/dev/null 2>&1; then
  (cd "$stage" && rm -rf .git && git init -q && git add -A . && \
   git -c user.email=ci@localhost -c user.name=ci commit -qm stage --no-verify) >/dev/null
fi
cd "$stage"
export PATH="$venv/bin:$PATH"
exec "$venv/bin/ansible-test" "$@"
