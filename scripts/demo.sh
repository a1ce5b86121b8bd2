#!/usr/bin/env bash
# Command 1 of the README: the main job on an embedded default, a local container fleet.
#   scripts/demo.sh up     build what is needed, start 3 containers (Debian 12 systemd,
#                          Debian 13 systemd, Debian 12 supervisord), converge
#                          playbooks/harden_restart.yml against them
#   scripts/demo.sh down   remove the demo containers and network
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export NETSVC_VENV=${NETSVC_VENV:-$top/.venv}
venv=$NETSVC_VENV
net=netsvc-demo
label=netsvc.demo=fleet
out="$top/demo/out"
FLEET=(
  "netsvc-demo-deb12|localhost/netsvc-debian12-systemd:latest|/lib/systemd/systemd|systemd"
  "netsvc-demo-deb13|localhost/netsvc-debian13-systemd:latest|/lib/systemd/systemd|systemd"
  "netsvc-demo-sup12|localhost/netsvc-debian12-supervisord:latest||supervisord"
)

down() {
  local ids=()
  mapfile -t ids < <(docker ps -aq --filter "label=$label" 2>/dev/null || true)
  [ ${#ids[@]} -eq 0 ] || docker rm -f "${ids[@]}" >/dev/null
  docker network rm "$net" >/dev/null 2>&1 || true
  echo "[demo] fleet removed"
}

up() {
  scripts/venv.sh
  # only the three images the demo's fleet runs (make test builds the others)
  scripts/testbed.sh all debian12-systemd debian13-systemd debian12-supervisord
  down >/dev/null
  docker network create --label "$label" "$net" >/dev/null
  mkdir -p "$out"
  local inv="$out/inventory.ini"
  printf '[fleet]\n' >"$inv"
  for entry in "${FLEET[@]}"; do
    IFS='|' read -r name image init kind <<<"$entry"
    # shellcheck disable=SC2086
    scripts/testbed.sh run "$name" "$image" "$label" "$net" ${init:+$init}
    printf '%s ansible_connection=community.docker.docker netsvc_init=%s\n' "$name" "$kind" >>"$inv"
  done
  export ANSIBLE_COLLECTIONS_PATH
  ANSIBLE_COLLECTIONS_PATH=$(mkdir -p .cache/collections/ansible_collections/netsvc && \
    ln -sfn "$top" .cache/collections/ansible_collections/netsvc/resilience && echo "$top/.cache/collections")
  export ANSIBLE_CONFIG="$top/demo/ansible.cfg"
  echo "[demo] crash test BEFORE, harden_restart.yml, crash test AFTER, audit (~1 min; log: $out/ansible.log)"
  if ! NETSVC_DEMO_OUT="$out" NETSVC_AUDIT_DIR="$out/audit" \
      "$venv/bin/ansible-playbook" -i "$inv" -e @demo/fleet_vars.yml demo/demo.yml >"$out/ansible.log" 2>&1; then
    tail -40 "$out/ansible.log"
    echo "[demo] the demo playbook failed; the whole log: $out/ansible.log"
    exit 1
  fi
  # the table first: what the demo shows
  echo
  echo "=== netsvc.resilience demo: the same SIGKILL before and after harden_restart.yml"
  echo
  cat "$out/before_after.md"
  echo
  echo "The playbook's own output: $out/ansible.log"
  echo "Readiness report: $out/audit/audit.html"
  echo "  open it: xdg-open $out/audit/audit.html   (no desktop here: python3 -m http.server -d $out/audit 8000,"
  echo "           then http://127.0.0.1:8000/audit.html; JSON: $out/audit/audit.json)"
  echo "The fleet is still running (inventory: $inv); remove it with: make demo-clean"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
