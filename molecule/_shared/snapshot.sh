# shellcheck shell=bash
# What the collection may touch, as text: unit files and drop-ins, the hook, sysctl.d, its state,
# live net.* values, and what systemd says about each service. Equal before hardening and after
# rollback = the rollback is exact. Usage (ansible.builtin.script): snapshot.sh UNIT...
set -o pipefail
find /etc/systemd/system /lib/systemd/system /run/systemd/system /etc/sysctl.d \
     /usr/lib/netsvc-resilience /var/lib/netsvc-resilience /run/netsvc-resilience \
     -xdev \( -type f -o -type l \) 2>/dev/null | sort | while read -r f; do
  if [ -L "$f" ]; then echo "$f -> $(readlink "$f")"; else echo "$f $(sha256sum <"$f" | cut -c1-16)"; fi
done
for k in net/ipv4/ip_local_reserved_ports net/ipv4/tcp_fin_timeout net/core/somaxconn net/ipv4/tcp_max_syn_backlog; do
  echo "$k = $(cat /proc/sys/$k)"
done
systemctl show "$@" -p Id -p Restart -p RestartUSec \
  -p StartLimitBurst -p StartLimitIntervalUSec -p OnFailure -p DropInPaths -p ActiveState -p User \
  -p PermissionsStartOnly
systemctl show "$@" -p ExecStartPre \
  | sed -E 's/ (start_time|stop_time|pid|code|status)=[^;}]*;?//g'
