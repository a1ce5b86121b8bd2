#!/usr/bin/env bash
# Command 2 of the README: every test. Installs what it needs on a fresh machine.
#   scripts/test.sh [step...]   steps: venv testbed lint native compat sanity units build docs molecule
#                               rollout el faults entrypoint awx bench
# Default: all steps in that order. MOLECULE_SCENARIOS="default kernel" limits molecule.
# "bench" is the benchmark harness's smoke run (one kill), not a benchmark.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
export NETSVC_VENV=${NETSVC_VENV:-$top/.venv}
# Containers this run creates carry this id (molecule/*/molecule.yml labels): the clean-up
# removes those and nothing else - not another run's, not a developer's.
export NETSVC_RUN_ID=${NETSVC_RUN_ID:-run-$$-$(date +%s)}
venv=$NETSVC_VENV
results=()
notes=()  # what a reader of the summary must see (a scenario that failed once, and how)
failed=0

cleanup() {
  # remove only the containers this run's molecule scenarios created (by their run label), by id
  local ids=()
  mapfile -t ids < <(docker ps -aq --filter "label=netsvc.run=$NETSVC_RUN_ID" 2>/dev/null || true)
  if [ ${#ids[@]} -gt 0 ]; then
    echo "[test] removing leftover test containers: ${ids[*]}"
    docker rm -f "${ids[@]}" >/dev/null 2>&1 || true
  fi
  # and any VM this checkout started (scripts/vm.sh knows them by their run directories)
  "$top/scripts/vm.sh" stop-all 2>/dev/null || true
}
trap cleanup EXIT

step() {
  local name=$1; shift
  local t0=$SECONDS
  echo "=== [$name] $*"
  if "$@"; then
    results+=("PASS $name ($((SECONDS - t0)) s)")
  else
    results+=("FAIL $name ($((SECONDS - t0)) s)")
    failed=$((failed + 1))
  fi
}

# The collection, seen by ansible-lint and ansible-playbook at its FQCN from this checkout.
collections_path() {
  local cp="$top/.cache/collections"
  mkdir -p "$cp/ansible_collections/netsvc"
  ln -sfn "$top" "$cp/ansible_collections/netsvc/resilience"
  echo "$cp"
}

# ansible-lint and molecule get an ANSIBLE_HOME of their own: molecule's prerun installs a
# copy of this collection into $ANSIBLE_HOME/collections, and ansible-lint resolved modules
# from such a copy in ~/.ansible before this checkout (a copy left by an earlier run of an
# older tree made lint fail on modules that tree did not have yet).
ansible_home() {  # ansible_home [name]: lint and molecule each get their own
  mkdir -p "$top/.cache/${1:-ansible-home}"
  echo "$top/.cache/${1:-ansible-home}"
}

# ansible-lint runs as in a plain clone (README, "Contributing"): no ANSIBLE_* variable, so it
# works in its own .ansible/ - it installs tests/requirements.yml there and this collection from
# disk. Galaxy is not reachable here: the development collections are put there first from the
# venv (unpacked from the ansible wheel on PyPI), and ansible-galaxy then finds nothing to do.
seed_lint_collections() {
  local site dest="$top/.ansible/collections/ansible_collections" c
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  for c in community/docker community/library_inventory_filtering_v1 ansible/posix; do
    [ -d "$dest/$c" ] && continue
    mkdir -p "$dest/$(dirname "$c")"
    cp -r "$site/ansible_collections/$c" "$dest/$c" || return 1
  done
}

do_lint() {
  "$venv/bin/ruff" check . || return 1
  "$venv/bin/antsibull-changelog" lint || return 1
  seed_lint_collections || return 1
  (for v in $(env | grep -o '^ANSIBLE_[A-Z_]*'); do unset "$v"; done
   PATH="$venv/bin:$PATH" "$venv/bin/ansible-lint" -q) || return 1
  "$venv/bin/python" tests/docs_check.py || return 1
}

do_compat() {
  # Host code on old interpreters: compiles on 3.6 and 2.7; every module refuses 2.7 cleanly
  # (scripts/compat.sh; a missing interpreter is skipped with a message)
  scripts/compat.sh
}

pyver() { "$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }

do_sanity() {
  # ansible-test's shellcheck test is skipped when the program is missing: install it (Debian)
  if ! command -v shellcheck >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >/dev/null 2>&1 \
      || { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
           && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >/dev/null; } \
      || echo "shellcheck could not be installed: sanity skips shell scripts"
  fi
  scripts/ansible-test.sh sanity --venv --python "$(pyver)"
}
do_units() { scripts/ansible-test.sh units --venv --python "$(pyver)"; }

do_build() {
  local tmp rc=0
  tmp=$(mktemp -d)
  "$venv/bin/ansible-galaxy" collection build --force --output-path "$tmp" . >/dev/null || rc=1
  if [ $rc = 0 ]; then
    "$venv/bin/ansible-galaxy" collection install --force -p "$tmp/coll" "$tmp"/netsvc-resilience-*.tar.gz >/dev/null || rc=1
  fi
  if [ $rc = 0 ]; then
    local listed
    listed=$(ANSIBLE_COLLECTIONS_PATH="$tmp/coll" "$venv/bin/ansible-doc" -l netsvc.resilience 2>&1)
    echo "$listed"
    for m in plugins/modules/*.py; do
      m=$(basename "$m" .py)
      grep -q "^netsvc.resilience.$m " <<<"$listed" || { echo "missing from ansible-doc: $m"; rc=1; }
    done
    # every filter shows its own documentation (a multi-filter file documents each in <name>.yml)
    for doc in plugins/filter/*.yml; do
      f=$(basename "$doc" .yml)
      # the header names the file the documentation came from
      # stderr apart: a library's deprecation warning printed first is not the doc's header
      ANSIBLE_COLLECTIONS_PATH="$tmp/coll" "$venv/bin/ansible-doc" -t filter "netsvc.resilience.$f" 2>/dev/null \
        | head -1 | grep -qF "/filter/$f.yml)" || { echo "ansible-doc -t filter netsvc.resilience.$f does not show its own doc"; rc=1; }
    done
    for r in roles/*/; do
      r=$(basename "$r")
      ANSIBLE_COLLECTIONS_PATH="$tmp/coll" "$venv/bin/ansible-doc" -t role -l netsvc.resilience 2>&1 \
        | grep -q "netsvc.resilience.$r" || { echo "role missing from ansible-doc: $r"; rc=1; }
    done
    # the tarball holds only what runs (galaxy.yml's build_ignore says what and why); listed
    # once (grep -q on a pipe would cut tar off: SIGPIPE, and pipefail calls that a failure)
    local stray listing
    listing=$(tar tzf "$tmp"/netsvc-resilience-*.tar.gz)
    stray=$(grep -vE \
      '^(MANIFEST\.json|FILES\.json|README\.md|LICENSE|CHANGELOG\.rst|(meta|plugins|roles|playbooks|files|src)/.*|docs/|docs/[^/]+\.md|docs/docsite/|docs/docsite/links\.yml)$' <<<"$listing" || true)
    if [ -n "$stray" ]; then
      echo "the tarball holds what it should not:"; echo "$stray" | head -20; rc=1
    fi
    for f in LICENSE README.md CHANGELOG.rst files/native/SHA256SUMS src/netsvc-sockclean.c; do
      grep -qx "$f" <<<"$listing" || { echo "the tarball lacks $f"; rc=1; }
    done
    # galaxy-importer, as Galaxy and Automation Hub run it on upload: no error, no warning
    local gi
    gi=$(cd "$tmp" && PATH="$venv/bin:$PATH" "$venv/bin/python" -m galaxy_importer.main \
           "$tmp"/netsvc-resilience-*.tar.gz 2>&1) || { echo "$gi" | tail -20; echo "galaxy-importer failed"; rc=1; }
    if grep -E '^(ERROR|WARNING)' <<<"$gi" | grep -v CryptographyDeprecationWarning; then
      echo "galaxy-importer reported the lines above"; rc=1
    fi
    grep -q "Importer processing completed successfully" <<<"$gi" || { echo "galaxy-importer did not complete"; rc=1; }
  fi
  rm -rf "$tmp"
  return $rc
}

# A scenario that fails is run once more, and says so at the end of the summary with the
# first failure's own lines: a failure seen once on another machine (CI) is then not lost in
# the middle of the log, and a scenario that fails twice fails the step.
do_molecule() {
  local s rc=0 attempt log t0 scenarios=${MOLECULE_SCENARIOS:-}
  if [ -z "$scenarios" ]; then
    scenarios=$(for d in molecule/*/molecule.yml; do basename "$(dirname "$d")"; done)
  fi
  mkdir -p "$top/.cache/logs"
  for s in $scenarios; do
    for attempt in 1 2; do
      t0=$SECONDS
      log="$top/.cache/logs/molecule-$s-$attempt.log"
      if [ "$attempt" = 1 ]; then echo "--- molecule scenario $s"; else echo "--- molecule scenario $s, run again"; fi
      if ANSIBLE_HOME=$(ansible_home) PATH="$venv/bin:$PATH" MOLECULE_GLOB='molecule/*/molecule.yml' \
          "$venv/bin/molecule" -c molecule/_shared/base.yml test -s "$s" 2>&1 | tee "$log"; then
        echo "molecule scenario $s: passed ($((SECONDS - t0)) s)"
        [ "$attempt" = 1 ] || notes+=("molecule $s passed when run again: its first run failed (above)")
        break
      fi
      echo "molecule scenario $s: FAILED ($((SECONDS - t0)) s)"
      notes+=("molecule $s failed (run $attempt, $((SECONDS - t0)) s); its last failures, from $log:")
      mapfile -t -O "${#notes[@]}" notes < <(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E 'fatal:|FAILED!|Assertion|"msg"|CRITICAL|ERROR' \
                                             | grep -v '\.\.\.ignoring' | tail -12 | cut -c1-300 | sed 's/^/    /')
      [ "$attempt" = 2 ] && rc=1
    done
  done
  return $rc
}

# Faults made to happen for real (tests/faults/faults.py; docs/reliability.md has the full
# run's table): the permanently failing service runs 1 minute here, 10 for the docs.
do_faults() { "$venv/bin/python" tests/faults/faults.py --failing-minutes "${NETSVC_FAILING_MINUTES:-1}"; }

# The rollout's gates on this leg's ansible-core (the EL leg runs them on 2.16): one real host
# and unreachable names (tests/rollout/gates.py).
do_rollout() {
  local host="netsvc-rollout-$$" net="netsvc-rollout-$$" inv rc=0
  docker network create --label "netsvc.run=$NETSVC_RUN_ID" "$net" >/dev/null || return 1
  scripts/testbed.sh run "$host" "${NETSVC_IMAGE:-localhost/netsvc-debian12-systemd:latest}" \
    "netsvc.run=$NETSVC_RUN_ID" "$net" "${NETSVC_INIT:-/lib/systemd/systemd}" || rc=1
  inv=$(mktemp --suffix=.ini)
  echo "$host ansible_connection=community.docker.docker" >"$inv"
  if [ $rc = 0 ]; then
    ANSIBLE_COLLECTIONS_PATH=$(collections_path) ANSIBLE_HOME=$(ansible_home rollout-home) \
      "$venv/bin/ansible-playbook" -i "$inv" tests/rollout/prepare.yml >/dev/null || rc=1
  fi
  if [ $rc = 0 ]; then
    ANSIBLE_COLLECTIONS_PATH=$(collections_path) ANSIBLE_HOME=$(ansible_home rollout-home) ANSIBLE_PIPELINING=true \
      ANSIBLE_FORCE_COLOR=false ANSIBLE_STDOUT_CALLBACK=default \
      "$venv/bin/python" tests/rollout/gates.py --playbook "$venv/bin/ansible-playbook" --host "$host" || rc=1
    # harden_restart's options for its one call, as this ansible-core templates them (no host)
    mkdir -p "$top/.cache/logs"
    if ANSIBLE_COLLECTIONS_PATH=$(collections_path) ANSIBLE_HOME=$(ansible_home rollout-home) ANSIBLE_FORCE_COLOR=false \
        "$venv/bin/ansible-playbook" tests/rollout/options.yml >"$top/.cache/logs/rollout-options.log" 2>&1; then
      echo "[rollout] role options             PASS"
    else
      echo "[rollout] role options             FAIL: $(grep -m1 -A3 'fatal:' "$top/.cache/logs/rollout-options.log")"; rc=1
    fi
    # the audit's report lands where ansible-playbook was started, from a checkout and installed
    ANSIBLE_COLLECTIONS_PATH=$(collections_path) ANSIBLE_HOME=$(ansible_home rollout-home) ANSIBLE_FORCE_COLOR=false \
      "$venv/bin/python" tests/rollout/audit_location.py --playbook "$venv/bin/ansible-playbook" --host "$host" || rc=1
  fi
  docker rm -f "$host" >/dev/null 2>&1
  docker network rm "$net" >/dev/null 2>&1
  rm -f "$inv"
  return $rc
}

# AWX / AAP as far as it runs here: the EE build context (ansible-builder) and jobs under
# ansible-runner against two containers (tests/awx/awx.py)
do_awx() { "$venv/bin/python" tests/awx/awx.py; }

do_bench_smoke() { "$venv/bin/python" benchmarks/bench.py recovery --smoke; }

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(venv testbed lint native compat sanity units build docs molecule rollout el faults entrypoint awx bench)
for s in "${steps[@]}"; do
  case "$s" in
    venv) step venv scripts/venv.sh || true
          [ -x "$venv/bin/python" ] || { echo "no virtualenv: cannot continue"; exit 1; } ;;
    testbed) step testbed scripts/testbed.sh all ;;
    lint) step lint do_lint ;;
    native) step native scripts/native.sh check ;;
    compat) step compat do_compat ;;
    sanity) step sanity do_sanity ;;
    units) step units do_units ;;
    build) step build do_build ;;
    docs) step docs scripts/docs.sh ;;
    molecule) step molecule do_molecule ;;
    rollout) step rollout do_rollout ;;
    el) step el-leg scripts/el-leg.sh ;;
    faults) step faults do_faults ;;
    entrypoint) step entrypoint "$venv/bin/python" tests/entrypoint/entrypoint.py ;;
    awx) step awx do_awx ;;
    bench) step bench-smoke do_bench_smoke ;;
    *) echo "unknown step $s"; exit 2 ;;
  esac
done

echo
echo "=== summary"
printf '%s\n' "${results[@]}"
passed=$(( ${#results[@]} - failed ))
echo "$passed passed, $failed failed"
if [ ${#notes[@]} -gt 0 ]; then
  echo "=== notes"
  printf '%s\n' "${notes[@]}"
fi
[ $failed = 0 ]
