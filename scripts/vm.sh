#!/usr/bin/env bash
# A QEMU VM for kernels the containers cannot give (containers share the host's kernel).
#   scripts/vm.sh image              build the Debian 11 image (kernel 5.10, systemd 247) if missing
#   scripts/vm.sh start NAME         boot a VM from it; prints JSON {address, port, user, identity_file, ...}
#   scripts/vm.sh stop NAME          stop that VM (the PID this script started) and remove its files
#   scripts/vm.sh stop-all           stop every VM this checkout started (CI clean-up)
#   scripts/vm.sh ssh NAME CMD...    run a command in it
# The image is cached by a hash of its recipe, per machine (/var/cache/netsvc-resilience/vm as
# root, else the checkout's .cache/vm; NETSVC_VM_IMAGES overrides): rebuilt only when the recipe
# changes, so a clean clone on a kept machine does not rebuild it. It is built aside and renamed
# into place when complete, under a lock (two checkouts may share it). A VM boots from a
# copy-on-write overlay of it, with a key generated per run (passed on the kernel command line
# and installed by a first-boot unit), SSH forwarded on 127.0.0.1.
# Acceleration: NETSVC_VM_ACCEL=kvm|tcg forces it; otherwise a bounded KVM probe boot decides
# once per machine (on these hosts a KVM guest hangs after "Probing EDD": nested virtualisation).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cache="$top/.cache/vm"   # this checkout's VMs (run dirs, logs)
if [ -n "${NETSVC_VM_IMAGES:-}" ]; then images=$NETSVC_VM_IMAGES
elif [ "$(id -u)" = 0 ]; then images=/var/cache/netsvc-resilience/vm
else images=$cache; fi
log() { printf '[vm] %s\n' "$*" >&2; }

# Flavours (NETSVC_VM_FLAVOR): oldkernel - Debian 11, kernel 5.10, systemd 247 (the default);
# selinux - Debian 12 with refpolicy enforcing (nginx confined as httpd_t), labelled at build
# time by a first boot that relabels the disk (docs/testbed.md, "A VM with SELinux enforcing").
FLAVOR=${NETSVC_VM_FLAVOR:-oldkernel}
BASE_PKGS="systemd,systemd-sysv,dbus,udev,kmod,linux-image-amd64,e2fsprogs,iproute2,procps,python3,openssh-server,socat,sudo"
case "$FLAVOR" in
  oldkernel) SUITE=bullseye; PKGS=$BASE_PKGS; CMDLINE_EXTRA="" ;;
  selinux) SUITE=bookworm
    PKGS="$BASE_PKGS,selinux-basics,selinux-policy-default,auditd,policycoreutils,policycoreutils-python-utils,netbase,nginx"
    CMDLINE_EXTRA="security=selinux selinux=1" ;;
  *) echo "NETSVC_VM_FLAVOR=$FLAVOR: oldkernel or selinux" >&2; exit 2 ;;
esac
RECIPE_VERSION=1   # bump when the build steps below change
MEM=${NETSVC_VM_MEM:-1024}
CPUS=${NETSVC_VM_CPUS:-2}
BOOT_TIMEOUT=${NETSVC_VM_BOOT_TIMEOUT:-300}

recipe_hash() { printf '%s|%s|%s' "$RECIPE_VERSION" "$SUITE" "$PKGS${CMDLINE_EXTRA:+|$CMDLINE_EXTRA}" | sha256sum | cut -c1-12; }
image_dir() { echo "$images/image-$SUITE-$(recipe_hash)"; }
image_ready() { [ -f "$1/disk.raw" ] && [ -f "$1/vmlinuz" ] && [ -f "$1/initrd.img" ]; }

need_tools() {
  local missing=()
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
  command -v qemu-img >/dev/null 2>&1 || missing+=(qemu-utils)
  command -v mkfs.ext4 >/dev/null 2>&1 || missing+=(e2fsprogs)
  command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || { log "missing ${missing[*]}: install them (apt) or run as root"; exit 1; }
  log "installing ${missing[*]} from apt"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
    || { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
}

build_image() {
  local final dir root
  final=$(image_dir)
  if image_ready "$final"; then
    log "image $final is up to date"; return 0
  fi
  [ "$(id -u)" = 0 ] || { log "must run as root to build the VM image"; exit 1; }
  mkdir -p "$images"
  exec 9>"$images/.build.lock"
  flock 9   # another checkout may be building the same image: wait for it
  if image_ready "$final"; then
    log "image $final was built meanwhile"; exec 9>&-; return 0
  fi
  need_tools
  dir="$final.partial"
  rm -rf "$dir"; mkdir -p "$dir"
  root=$(mktemp -d /var/tmp/netsvc-vmroot.XXXXXX)
  # shellcheck disable=SC2064
  trap "rm -rf '$root'" RETURN
  log "debootstrap $SUITE with its kernel (~3 min)"
  debootstrap --variant=minbase --include="$PKGS" "$SUITE" "$root" >"$dir/debootstrap.log" 2>&1 \
    || { tail -20 "$dir/debootstrap.log" >&2; exit 1; }
  echo "/dev/vda / ext4 defaults 0 1" >"$root/etc/fstab"
  echo "netsvc-$FLAVOR" >"$root/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 netsvc-%s\n' "$FLAVOR" >"$root/etc/hosts"
  : >"$root/etc/machine-id"
  mkdir -p "$root/etc/systemd/network" "$root/root/.ssh"
  chmod 700 "$root/root/.ssh"
  printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n' >"$root/etc/systemd/network/20-wired.network"
  ln -sf /lib/systemd/system/systemd-networkd.service "$root/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
  # first boot of each run: the run's public key from the kernel command line, loopback up
  cat >"$root/usr/local/sbin/netsvc-firstboot" <<'SH'
#!/bin/sh
ip link set lo up
for word in $(cat /proc/cmdline); do
  case "$word" in netsvc.key=*) echo "${word#netsvc.key=}" | base64 -d >/root/.ssh/authorized_keys ;; esac
done
chmod 600 /root/.ssh/authorized_keys 2>/dev/null || true
SH
  chmod 755 "$root/usr/local/sbin/netsvc-firstboot"
  cat >"$root/etc/systemd/system/netsvc-firstboot.service" <<'UNIT'
[Unit]
Description=netsvc test bed: this run's SSH key and loopback
Before=ssh.service
DefaultDependencies=no
After=local-fs.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/netsvc-firstboot

[Install]
WantedBy=multi-user.target
UNIT
  ln -sf /etc/systemd/system/netsvc-firstboot.service "$root/etc/systemd/system/multi-user.target.wants/netsvc-firstboot.service"
  printf 'UseDNS no\nPasswordAuthentication no\n' >>"$root/etc/ssh/sshd_config"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
  cp "$root"/boot/vmlinuz-* "$dir/vmlinuz"
  cp "$root"/boot/initrd.img-* "$dir/initrd.img"
  if [ "$FLAVOR" = selinux ]; then
    sed -i 's/^SELINUX=.*/SELINUX=enforcing/' "$root/etc/selinux/config"
    touch "$root/.autorelabel"
  fi
  truncate -s 2G "$dir/disk.raw"
  mkfs.ext4 -q -F -L netsvc -d "$root" "$dir/disk.raw"
  if [ "$FLAVOR" = selinux ]; then
    # the first boot relabels the whole disk and reboots, which -no-reboot turns into qemu
    # exiting: that disk is the labelled image (~3 min under TCG)
    log "labelling the disk: a first boot relabels it and exits (~3-5 min under TCG)"
    timeout 1200 qemu-system-x86_64 -m "$MEM" -smp "$CPUS" -display none -no-reboot \
      -serial "file:$dir/relabel.log" -kernel "$dir/vmlinuz" -initrd "$dir/initrd.img" \
      -append "root=/dev/vda rw console=ttyS0 quiet systemd.mask=serial-getty@ttyS0.service $CMDLINE_EXTRA enforcing=0" \
      -drive "file=$dir/disk.raw,format=raw,if=virtio" </dev/null >"$dir/relabel-qemu.log" 2>&1 \
      || { log "the relabel boot did not finish"; tail -20 "$dir/relabel.log" >&2; exit 1; }
    grep -qi "relabel" "$dir/relabel.log" || log "warning: the relabel boot printed no relabel line (see $dir/relabel.log)"
  fi
  rm -rf "$final"; mv "$dir" "$final"
  exec 9>&-
  log "built $final (kernel $(basename "$root"/boot/vmlinuz-* | sed 's/vmlinuz-//'))"
}

# KVM only when a bounded probe boot gets past early boot; cached per machine.
pick_accel() {
  case "${NETSVC_VM_ACCEL:-}" in kvm|tcg) echo "$NETSVC_VM_ACCEL"; return ;; esac
  local mark
  mark="$cache/accel-$(uname -r)"
  if [ -f "$mark" ]; then cat "$mark"; return; fi
  local accel=tcg dir out
  dir=$(image_dir)
  if [ -c /dev/kvm ] && [ -w /dev/kvm ]; then
    out=$(mktemp)
    # no init: the kernel panics once it gets that far, which is all we need to know
    timeout 30 qemu-system-x86_64 -enable-kvm -m 256 -display none -serial "file:$out" -no-reboot \
      -kernel "$dir/vmlinuz" -append "console=ttyS0 panic=-1 rdinit=/netsvc-no-init init=/netsvc-no-init" \
      >/dev/null 2>&1 || true
    grep -q -e "Kernel panic" -e "Run /" "$out" && accel=kvm
    rm -f "$out"
  fi
  mkdir -p "$cache"; echo "$accel" >"$mark"
  log "acceleration: $accel (probe cached in $mark; NETSVC_VM_ACCEL=kvm|tcg forces it)"
  echo "$accel"
}

run_dir() { echo "$cache/run-$1"; }

start_vm() {
  local name=$1 dir run port accel key
  build_image
  need_tools
  dir=$(image_dir); run=$(run_dir "$name")
  [ ! -e "$run/qemu.pid" ] || stop_vm "$name"
  rm -rf "$run"; mkdir -p "$run"
  accel=$(pick_accel)
  ssh-keygen -q -t ed25519 -N "" -C "netsvc-$name" -f "$run/id_ed25519"
  key=$(base64 -w0 "$run/id_ed25519.pub")
  qemu-img create -q -f qcow2 -F raw -b "$dir/disk.raw" "$run/disk.qcow2"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  local accel_args=()
  [ "$accel" = kvm ] && accel_args=(-enable-kvm -cpu host)
  log "booting $name ($accel, $CPUS CPUs, ${MEM} MB), SSH on 127.0.0.1:$port"
  setsid qemu-system-x86_64 "${accel_args[@]}" -m "$MEM" -smp "$CPUS" -display none -no-reboot \
    -serial "file:$run/console.log" -pidfile "$run/qemu.pid" \
    -kernel "$dir/vmlinuz" -initrd "$dir/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 quiet systemd.mask=serial-getty@ttyS0.service netsvc.key=$key${CMDLINE_EXTRA:+ $CMDLINE_EXTRA enforcing=1}" \
    -drive "file=$run/disk.qcow2,format=qcow2,if=virtio" \
    -nic "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:$port-:22" \
    </dev/null >"$run/qemu.log" 2>&1 &
  echo $! >"$run/launcher.pid"
  echo "$port" >"$run/port"
  local t0=$SECONDS
  until ssh_vm "$name" true 2>/dev/null; do
    # qemu's own pidfile: $! is setsid's PID, and setsid forks when it leads a process group
    if ! vm_alive "$run"; then
      log "qemu exited: $(tail -5 "$run/qemu.log")"; tail -20 "$run/console.log" >&2 || true; exit 1
    fi
    if [ $((SECONDS - t0)) -ge "$BOOT_TIMEOUT" ]; then
      log "no SSH after ${BOOT_TIMEOUT} s; console tail:"; tail -20 "$run/console.log" >&2 || true
      stop_vm "$name"; exit 1
    fi
    sleep 2
  done
  log "$name is up after $((SECONDS - t0)) s"
  printf '{"instance": "%s", "address": "127.0.0.1", "port": %s, "user": "root", "identity_file": "%s", "accel": "%s", "boot_seconds": %s}\n' \
    "$name" "$port" "$run/id_ed25519" "$accel" "$((SECONDS - t0))"
}

vm_alive() {  # vm_alive RUN_DIR: the launcher or the qemu of this run is still there
  local run=$1 pid f
  for f in launcher.pid qemu.pid; do
    pid=$(cat "$run/$f" 2>/dev/null || true)
    [ -n "$pid" ] && grep -q "$run/disk.qcow2" "/proc/$pid/cmdline" 2>/dev/null && return 0
  done
  # just started: qemu writes its pidfile a moment after the launcher forks
  [ ! -s "$run/qemu.pid" ] && kill -0 "$(cat "$run/launcher.pid" 2>/dev/null)" 2>/dev/null
}

ssh_vm() {
  local name=$1 run; shift
  run=$(run_dir "$name")
  ssh -q -i "$run/id_ed25519" -p "$(cat "$run/port")" -o BatchMode=yes -o ConnectTimeout=5 \
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR root@127.0.0.1 "$@"
}

stop_vm() {
  local name=$1 run pid
  run=$(run_dir "$name")
  [ -d "$run" ] || return 0
  for f in qemu.pid launcher.pid; do
    pid=$(cat "$run/$f" 2>/dev/null || true)
    # only a qemu this script started (its command line names this run's overlay)
    if [ -n "$pid" ] && grep -q "$run/disk.qcow2" "/proc/$pid/cmdline" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  # the last console and qemu logs stay for a post-mortem (overwritten by the next run)
  cp "$run/console.log" "$cache/last-console-$name.log" 2>/dev/null || true
  cp "$run/qemu.log" "$cache/last-qemu-$name.log" 2>/dev/null || true
  rm -rf "$run"
  log "stopped $name and removed its files (console log kept in $cache/last-console-$name.log)"
}

case "${1:-}" in
  image) build_image ;;
  start) start_vm "${2:?name}" ;;
  stop) stop_vm "${2:?name}" ;;
  stop-all) for r in "$cache"/run-*; do [ -d "$r" ] && stop_vm "${r##*/run-}"; done; true ;;
  ssh) shift; ssh_vm "$@" ;;
  *) echo "usage: $0 image|start NAME|stop NAME|stop-all|ssh NAME CMD..." >&2; exit 2 ;;
esac
