#!/usr/bin/env bash
# Container test bed for netsvc.resilience (see docs/testbed.md).
#   scripts/testbed.sh engine          start the Docker engine if none answers (installs docker.io as root)
#   scripts/testbed.sh images [--rebuild] [NAME...]   build local images that are missing or whose recipe changed
#   scripts/testbed.sh all             engine + images (default)
#   scripts/testbed.sh run NAME IMAGE LABEL NETWORK [INIT...]
#                                      start a test host with the flags that work here
# Images are built with debootstrap (no registry needed) and cached by tag; each carries a
# label with the hash of its recipe, so a changed recipe rebuilds and an unchanged one is kept.
set -euo pipefail
log() { printf '[testbed] %s\n' "$*" >&2; }

need_root() { [ "$(id -u)" = 0 ] || { log "must run as root to $1"; exit 1; }; }

apt_install() {
  need_root "install $*"
  if [ -z "${__apt_updated:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    __apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

engine() {
  if docker info >/dev/null 2>&1; then
    log "docker engine answers"
    return 0
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    log "installing docker.io from apt"
    apt_install docker.io
  fi
  # Never start a second dockerd: only start one if no dockerd process exists at all.
  if pgrep -x dockerd >/dev/null 2>&1; then
    log "a dockerd is running but not answering yet; waiting for it"
  else
    need_root "start dockerd"
    log "starting dockerd (log: /var/log/netsvc-dockerd.log)"
    setsid nohup dockerd >/var/log/netsvc-dockerd.log 2>&1 </dev/null &
  fi
  for _ in $(seq 1 150); do
    docker info >/dev/null 2>&1 && { log "docker engine ready"; return 0; }
    sleep 0.2
  done
  log "docker engine did not answer within 30 s; see /var/log/netsvc-dockerd.log"
  exit 1
}

# name|suite|extra packages|init command
# Keep in sync with docs/testbed.md. systemd images: bookworm ~ RHEL 9 (252), trixie ~ RHEL 10 (257).
RECIPES=(
  "debian12-systemd|bookworm|systemd,systemd-sysv,dbus|/lib/systemd/systemd"
  "debian13-systemd|trixie|systemd,systemd-sysv,dbus|/lib/systemd/systemd"
  "debian12-supervisord|bookworm|supervisor|/usr/bin/supervisord -n -c /etc/supervisor/supervisord.conf"
  # stock daemons under their own vendor units (sandboxed, non-root): issue 11's real targets
  "debian12-daemons|bookworm|systemd,systemd-sysv,dbus,nginx,haproxy,memcached,redis-server,socat|/lib/systemd/systemd"
  # servers never written for socket activation, on systemd 257 (issue 13's preload)
  "debian13-daemons|trixie|systemd,systemd-sysv,dbus,nginx,socat|/lib/systemd/systemd"
  # EL-shaped hosts (Debian 12 userland, EL8 os-release, platform-python = pyenv's 3.6): issue 14.
  # Built only where a Python 3.6 is found (see el_python); otherwise skipped with a message.
  "el8-systemd|bookworm|systemd,systemd-sysv,dbus|/lib/systemd/systemd|el_shape_systemd"
  "el8-supervisord|bookworm|supervisor|/usr/bin/supervisord -n -c /etc/supervisord.conf|el_shape_supervisord"
)
# sudo: the playbooks become root by default (netsvc_become), as on a real host
COMMON_PKGS="python3,iproute2,procps,sudo"
RECIPE_VERSION=4   # bump when the build steps below change

image_tag() { echo "localhost/netsvc-$1:latest"; }

# The Python 3.6 (and 2.7) the EL-shaped images carry: real interpreters from pyenv.
el_python() {  # el_python 3.6 -> the versions directory or empty
  local d
  for d in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$1".*; do
    [ -x "$d/bin/python$1" ] && { echo "$d"; return; }
  done
}

# EL shape: EL8 os-release (saying what it really is), platform-python = Python 3.6, and a
# Python 2.7 under /opt for the clean-refusal test. Debian's python3 is removed (systemd host).
el_shape() {
  local root=$1 py36 py27
  py36=$(el_python 3.6); py27=$(el_python 2.7)
  cp -a "$py36" "$root/opt/netsvc-python3.6"
  [ -n "$py27" ] && cp -a "$py27" "$root/opt/netsvc-python2.7"
  # what a managed host never needs: tests, Tk, IDLE, static libraries
  rm -rf "$root"/opt/netsvc-python*/lib/python*/{test,idlelib,tkinter,lib2to3/tests,ensurepip,unittest/test} \
         "$root"/opt/netsvc-python*/lib/python*/config-* "$root"/opt/netsvc-python*/lib/*.a
  find "$root"/opt/netsvc-python* -depth -type d -name __pycache__ -exec rm -rf {} +
  find "$root"/opt/netsvc-python* -name '*.pyc' -delete
  ln -sf /opt/netsvc-python3.6/bin/python3.6 "$root/usr/libexec/platform-python"
  # pyenv builds them shared, with a RUNPATH into pyenv's folder: tell the loader where they are now
  printf '/opt/netsvc-python3.6/lib\n/opt/netsvc-python2.7/lib\n' >"$root/etc/ld.so.conf.d/netsvc-python.conf"
  ldconfig -r "$root"
  rm -f "$root/etc/os-release"
  cat >"$root/etc/os-release" <<'OSR'
NAME="Rocky Linux"
VERSION="8.9 (netsvc test bed: Debian 12 userland in EL shape, not RHEL)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="8.9"
PLATFORM_ID="platform:el8"
PRETTY_NAME="EL8-shaped netsvc test host (Debian 12 userland)"
OSR
}
el_shape_systemd() {
  el_shape "$1"
  rm -rf "$1"/usr/bin/python3* "$1"/usr/lib/python3* "$1"/usr/lib/python3.*
}
el_shape_supervisord() {
  el_shape "$1"
  mkdir -p "$1/etc/supervisord.d"
  cat >"$1/etc/supervisord.conf" <<'CONF'
; EL layout: programs in /etc/supervisord.d/*.ini
[unix_http_server]
file=/run/supervisor.sock
chmod=0700

[supervisord]
logfile=/var/log/supervisord.log
pidfile=/run/supervisord.pid

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix:///run/supervisor.sock

[include]
files = /etc/supervisord.d/*.ini
CONF
}

recipe_hash() {
  local extra=""
  # an EL-shaped image depends on the interpreters copied into it
  case "$1" in *"|el_shape"*) extra="$(el_python 3.6)|$(el_python 2.7)" ;; esac
  printf '%s|%s|%s|%s' "$RECIPE_VERSION" "$COMMON_PKGS" "$1" "$extra" | sha256sum | cut -c1-16
}

build_image() {
  local recipe=$1 force=$2 name suite pkgs init post tag hash have rootfs
  IFS='|' read -r name suite pkgs init post <<<"$recipe"
  if [ -n "$post" ] && [ -z "$(el_python 3.6)" ]; then
    log "SKIPPED $name: no Python 3.6 under pyenv's versions folder to give it (the EL leg is skipped too)"
    return 0
  fi
  tag=$(image_tag "$name")
  hash=$(recipe_hash "$recipe")
  have=$(docker image inspect -f '{{index .Config.Labels "netsvc.recipe"}}' "$tag" 2>/dev/null || true)
  if [ "$force" = 0 ] && [ "$have" = "$hash" ]; then
    log "$tag is up to date (recipe $hash)"
    return 0
  fi
  command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
  need_root "debootstrap $suite"
  rootfs=$(mktemp -d /var/tmp/netsvc-rootfs.XXXXXX)
  # shellcheck disable=SC2064
  trap "rm -rf '$rootfs'" RETURN
  log "building $tag from $suite (+$pkgs); ~1 min"
  debootstrap --variant=minbase --include="$COMMON_PKGS,$pkgs" "$suite" "$rootfs" >"$rootfs.log" 2>&1 \
    || { tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
  rm -f "$rootfs.log"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  # systemd in a container: no getty, no udev-settle waits
  rm -f "$rootfs"/etc/systemd/system/getty.target.wants/* 2>/dev/null || true
  [ -z "$post" ] || "$post" "$rootfs"
  : >"$rootfs/etc/machine-id"
  local cmd_json
  cmd_json=$(python3 -c 'import json,shlex,sys; print(json.dumps(shlex.split(sys.argv[1])))' "$init")
  tar -C "$rootfs" -c . | docker import \
    -c "CMD $cmd_json" \
    -c "LABEL netsvc.recipe=$hash netsvc.suite=$suite" \
    - "$tag" >/dev/null
  log "built $tag"
}

images() {
  local force=0 names=()
  for a in "$@"; do
    case "$a" in
      --rebuild) force=1 ;;
      *) names+=("$a") ;;
    esac
  done
  for r in "${RECIPES[@]}"; do
    local n=${r%%|*}
    if [ ${#names[@]} -eq 0 ] || printf '%s\n' "${names[@]}" | grep -qx "$n"; then
      build_image "$r" "$force"
    fi
  done
}

# The container flags that work here (docs/testbed.md): no --privileged (it fails: the sandbox
# lacks CAP_SYS_RESOURCE); SYS_ADMIN + NET_ADMIN, seccomp unconfined, host cgroup namespace;
# SYS_PTRACE as root has on a real host (cleanup: auto reads listeners with pidfd_getfd).
# run NAME IMAGE LABEL NETWORK [COMMAND...]; NETSVC_RUN_OPTS adds docker run options (the
# reboot fault: systempaths=unconfined, so systemd-sysctl can write /proc/sys at boot)
run_host() {
  local name=$1 image=$2 label=$3 network=$4 extra=()
  shift 4
  read -r -a extra <<<"${NETSVC_RUN_OPTS:-}"
  docker run -d --name "$name" --hostname "$name" --network "$network" --label "$label" \
    --cap-add SYS_ADMIN --cap-add NET_ADMIN --cap-add SYS_PTRACE --security-opt seccomp=unconfined \
    --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
    --tmpfs /run --tmpfs /run/lock --tmpfs /tmp "${extra[@]}" "$image" "$@" >/dev/null
}

case "${1:-all}" in
  run) shift; run_host "$@" ;;
  engine) engine ;;
  images) shift; engine; images "$@" ;;
  all) shift || true; engine; images "$@" ;;
  list) for r in "${RECIPES[@]}"; do image_tag "${r%%|*}"; done ;;
  *) echo "usage: $0 [engine|images [--rebuild] [NAME...]|all|list]" >&2; exit 2 ;;
esac
