#!/usr/bin/env bash
# What bridge networking costs a run: `run --rm IMAGE /bin/true` on the native backend on the
# default bridge network (CNI bridge + host-local, ADD at start and DEL at rm; portmap only
# runs for published ports) and with `--network none`, against `docker run --rm` (docker's
# default bridge) and `podman run --rm` (Debian's podman with netavark), all on one busybox
# image, in one run.
# Targets: bridge adds <= 15 ms to a native run; berth bridged <= 0.25x docker, <= 0.5x podman.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
runs=${RUNS:-30}

scripts/setup.sh
if ! command -v podman >/dev/null; then
    echo "network-latency: installing podman (the peer)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman >/dev/null
fi
cargo build --release -p berth-cli
started=$(scripts/daemons.sh start)
work=$(mktemp -d)
trap "'$PWD/target/release/berth' --config '$work/berth.toml' network rm berth >/dev/null 2>&1 || true; scripts/daemons.sh stop $(echo $started); rm -rf '$work'" EXIT
berth=$PWD/target/release/berth

busybox_rootfs "$work/rootfs"
tar -C "$work/rootfs" -c . | docker import - busybox:bench >/dev/null
tar -C "$work/rootfs" -c . | podman import - busybox:bench >/dev/null

native_config "$work/berth.toml" "$work"
cat >>"$work/berth.toml" <<TOML
[network]
bridge = "berth-bench0"
subnet = "10.93.0.0/24"
TOML
"$berth" --config "$work/berth.toml" image import --rootfs "$work/rootfs" busybox:bench >/dev/null

# podman as DESIGN.md found it to run here: runc, cgroupfs, limits within this machine's.
podman=(podman run --rm --runtime runc --cgroup-manager cgroupfs
    --ulimit nofile=1024:1024 --ulimit nproc=4096:4096)

hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/results.json" \
    -n berth-bridge "$berth --config $work/berth.toml run --rm busybox:bench /bin/true" \
    -n berth-none "$berth --config $work/berth.toml run --rm --network none busybox:bench /bin/true" \
    -n docker "docker run --rm busybox:bench /bin/true" \
    -n podman "${podman[*]} localhost/busybox:bench /bin/true" >/dev/null

python3 - "$work/results.json" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
median = {name: r["median"] * 1000 for name, r in results.items()}
for name, ms in median.items():
    print(f"{name:<14} median {ms:8.2f} ms   (min {results[name]['min']*1000:.2f}, max {results[name]['max']*1000:.2f}, n={len(results[name]['times'])})")
b, n, d, p = (median[k] for k in ("berth-bridge", "berth-none", "docker", "podman"))
print(f"bridge - none            {b - n:7.2f} ms   (target <= 15 ms)")
print(f"ratio berth-bridge / docker {b / d:6.3f}x   (target <= 0.25x)")
print(f"ratio berth-bridge / podman {b / p:6.3f}x   (target <= 0.5x)")
PY
