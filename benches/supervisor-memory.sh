#!/usr/bin/env bash
# What a detached container costs the host while it runs: the private (anonymous) memory and the
# RSS of berth's native supervisor, from /proc/PID/smaps_rollup, beside containerd's
# shim (containerd-shim-runc-v2) for the same `sleep` started by `ctr run -d`.
# Target: the supervisor at most 1 MiB of anonymous memory.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh

scripts/setup.sh
cargo build --release -p berth-cli
started=$(scripts/daemons.sh start)
work=$(mktemp -d)
berth=$PWD/target/release/berth
cleanup() {
    "$berth" --config "$work/berth.toml" rm -f memory >/dev/null 2>&1 || true
    ctr -n berth-memory tasks kill -s KILL memory >/dev/null 2>&1 || true
    sleep 0.5
    ctr -n berth-memory containers rm memory >/dev/null 2>&1 || true
    ctr -n berth-memory images rm $(ctr -n berth-memory images ls -q) >/dev/null 2>&1 || true
    scripts/daemons.sh stop $started
    rm -rf "$work"
}
trap cleanup EXIT

busybox_rootfs "$work/rootfs"
native_config "$work/berth.toml" "$work"
"$berth" --config "$work/berth.toml" image import --rootfs "$work/rootfs" busybox:bench >/dev/null
ctr_image=$(ctr_import_rootfs "$work/rootfs" berth-memory)

id=$("$berth" --config "$work/berth.toml" run -d --network none --name memory busybox:bench sleep 86400)
ctr -n berth-memory run -d "$ctr_image" memory sleep 86400 >/dev/null
sleep 1 # both settled: output copied, nothing left to start
supervisor=$(pgrep -f -n "__native-supervise .* $id\$")
shim=$(pgrep -f -n "containerd-shim-runc-v2 -namespace berth-memory")

python3 - "$supervisor" "$shim" <<'PY'
import sys
def rollup(pid):
    fields = {}
    for line in open(f"/proc/{pid}/smaps_rollup"):
        parts = line.split()
        if len(parts) == 3 and parts[2] == "kB":
            fields[parts[0].rstrip(":")] = int(parts[1])
    return fields
for name, pid in (("berth supervisor", sys.argv[1]), ("containerd shim", sys.argv[2])):
    f = rollup(pid)
    print(f"{name:<17} pid {pid:>7}   anonymous {f['Anonymous'] / 1024:5.2f} MiB   private dirty "
          f"{f['Private_Dirty'] / 1024:5.2f} MiB   rss {f['Rss'] / 1024:5.2f} MiB   pss {f['Pss'] / 1024:5.2f} MiB")
s, c = rollup(sys.argv[1]), rollup(sys.argv[2])
print(f"ratio supervisor / shim   anonymous {s['Anonymous'] / c['Anonymous']:5.3f}x   rss {s['Rss'] / c['Rss']:5.3f}x")
print("target: the supervisor at most 1 MiB anonymous")
PY
