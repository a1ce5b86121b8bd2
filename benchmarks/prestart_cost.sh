#!/usr/bin/env bash
# What a pre-start command costs a restart (issue 16), measured with the recovery driver:
# the same Python server WITH SO_REUSEADDR under six units - no ExecStartPre, /bin/true, the
# hook as ExecStartPre=+-, the hook with RestartMode=direct, RestartMode=direct alone, the hook
# as ExecStopPost=+- - 15 SIGKILLs each under the driver's loopback load, in one container.
#   benchmarks/prestart_cost.sh [IMAGE] [OUT.json]   (default: the Debian 13 image, systemd 257)
set -e
cd "$(dirname "$0")/.."
img=${1:-localhost/netsvc-debian13-systemd:latest}
c=netsvc-prebench
label="netsvc.run=${NETSVC_RUN_ID:-prestart-$$}"
docker network create netsvc-prebench >/dev/null 2>&1 || true
scripts/testbed.sh run $c "$img" "$label" netsvc-prebench /lib/systemd/systemd
trap 'docker rm -f "$(docker ps -aq --filter "label=$label")" >/dev/null 2>&1; docker network rm netsvc-prebench >/dev/null 2>&1' EXIT
sleep 3
docker exec $c systemctl is-system-running --wait >/dev/null || true
docker cp tests/files/netsvc_echo.py $c:/usr/local/bin/netsvc-echo
docker cp files/native/x86_64/netsvc-sockclean $c:/usr/local/bin/netsvc-sockclean
docker cp plugins/module_utils/primitives/_probe.py $c:/root/_probe.py
docker cp benchmarks/recovery_driver.py $c:/root/recovery_driver.py
docker exec $c chmod 755 /usr/local/bin/netsvc-sockclean
mk() { # name port extra-lines
  docker exec $c sh -c "printf '[Unit]\nStartLimitIntervalSec=10\nStartLimitBurst=50\n[Service]\nExecStart=/usr/bin/python3 /usr/local/bin/netsvc-echo $2 --reuseaddr\nRestart=on-failure\nRestartSec=0\n$3' > /etc/systemd/system/$1.service"
}
mk pre-none 7501 ''
mk pre-true 7502 'ExecStartPre=/bin/true\n'
mk pre-hook 7503 'ExecStartPre=+-/usr/local/bin/netsvc-sockclean --unit %%n 7503\n'
mk pre-hook-direct 7504 'ExecStartPre=+-/usr/local/bin/netsvc-sockclean --unit %%n 7504\nRestartMode=direct\n'
mk pre-none-direct 7505 'RestartMode=direct\n'
mk pre-stoppost 7506 'ExecStopPost=+-/usr/local/bin/netsvc-sockclean --unit %%n 7506\n'
docker exec $c sh -c 'systemctl daemon-reload; systemctl start pre-none pre-true pre-hook pre-hook-direct pre-none-direct pre-stoppost'
cfg='{"configs": ['
for u in "pre-none 7501" "pre-true 7502" "pre-hook 7503" "pre-hook-direct 7504" "pre-none-direct 7505" "pre-stoppost 7506"; do
  read -r name port <<<"$u"
  cfg="$cfg{\"name\": \"$name\", \"units\": [[\"$name.service\", $port]], \"kills\": ${KILLS:-15}, \"mode\": \"sequential\", \"timeout\": 20},"
done
cfg="${cfg%,}], \"floor\": {\"port\": 7599, \"runs\": 5}, \"seed\": 1}"
echo "$cfg" | docker exec -i $c sh -c 'cat > /root/cfg.json'
docker exec $c python3 /root/recovery_driver.py /root/cfg.json > "${2:-/tmp/netsvc-prestart-cost.json}"
python3 - "${2:-/tmp/netsvc-prestart-cost.json}" <<'PY'
import json, statistics, sys
d = json.load(open(sys.argv[1]))
print("floor median", statistics.median(d["floor_ms"]))
for c in d["configs"]:
    xs = sorted(s["recovery_ms"] for s in c["samples"] if s.get("recovery_ms"))
    print("%-18s median %7.2f  p90 %7.2f  max %7.2f  failed/kill %s" % (c["name"], statistics.median(xs), xs[int(len(xs)*0.9)-1], xs[-1], statistics.median(s.get("failed_connects", 0) for s in c["samples"])))
PY
