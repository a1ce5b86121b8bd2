"""Restart-hook cost vs TIME_WAIT count, run INSIDE a container where prestart_cleanup ran.

Times the installed hook (the native build) and its Python twin (copied next to this driver as
/root/netsvc_sockdiag.py), each exec'd like systemd does.
Prints JSON: [{"sockets": N, "native_ms": [...], "nodrain_ms": [...], "python_ms": [...], "left": L}, ...]
``nodrain_ms``: the same native hook with ``--drain-ms 0`` - the cost of the drain when nothing is in
flight (TIME_WAIT sockets hold no data: the drain is never entered), side by side with the default.
"""
import json
import subprocess
import time

HOOK = "/usr/lib/netsvc-resilience/netsvc-sockclean"
PY = "/root/netsvc_sockdiag.py"
PORT = 7300


def pile(n):
    if n:
        subprocess.run(["python3", "/usr/local/bin/netsvc-load", str(PORT), str(n), "--serve"],
                       stdout=subprocess.DEVNULL, check=True)
        time.sleep(0.3)


def timed(argv):
    t0 = time.perf_counter()
    out = subprocess.run(argv, stdout=subprocess.PIPE, universal_newlines=True, check=False).stdout
    return round((time.perf_counter() - t0) * 1000, 2), out


def main():
    rows = []
    for n, reps in ((0, 15), (1000, 9), (10000, 3)):
        row = {"sockets": n, "native_ms": [], "nodrain_ms": [], "python_ms": [], "left": None, "lines": []}
        for _i in range(reps):
            pile(n)
            ms, out = timed([HOOK, str(PORT)])
            row["native_ms"].append(ms)
            row["lines"].append(out.strip())
            pile(n)
            ms, _out = timed([HOOK, "--drain-ms", "0", str(PORT)])
            row["nodrain_ms"].append(ms)
            pile(n)
            ms, out = timed(["python3", "-I", "-S", PY, str(PORT)])
            row["python_ms"].append(ms)
        row["left"] = row["lines"][-1].rsplit("left ", 1)[-1].split()[0] if row["lines"] else None
        rows.append(row)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
