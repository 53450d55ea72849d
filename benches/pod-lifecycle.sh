#!/usr/bin/env bash
# A pod's whole life: create a pod with two apps and start it, then remove it, on berth's
# native backend (`pod create` + two `run -d --pod` + `pod rm -f`, and the same pod from one
# `pod run --manifest`) against podman (`pod create` + two `run -d --pod` + `pod rm -f`,
# Debian's podman with runc and its own pause image; its rm with -t 0, as berth's -f kills at
# once), both on their default bridge network, in one run. Target: berth at most 0.3x podman.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
runs=${RUNS:-15}

scripts/setup.sh
if ! command -v podman >/dev/null; then
    echo "pod-lifecycle: installing podman (the peer)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman catatonit >/dev/null
fi
cargo build --release -p berth-cli
work=$(mktemp -d)
berth=$PWD/target/release/berth
# Under `set -e` a failing command in the trap would become the exit code: each one may fail.
trap "'$berth' --config '$work/berth.toml' pod rm -f bp >/dev/null 2>&1 || true
'$berth' --config '$work/berth.toml' network rm berth >/dev/null 2>&1 || true
podman pod rm -f -t 0 pp >/dev/null 2>&1 || true
rm -rf '$work'" EXIT

busybox_rootfs "$work/rootfs"
tar -C "$work/rootfs" -c . | podman import - busybox:bench >/dev/null

native_config "$work/berth.toml" "$work"
cat >>"$work/berth.toml" <<TOML
[network]
bridge = "berth-bench1"
subnet = "10.94.0.0/24"
TOML
"$berth" --config "$work/berth.toml" image import --rootfs "$work/rootfs" busybox:bench >/dev/null
cat >"$work/pod.toml" <<TOML
name = "bp"
[[app]]
name = "a"
image = "busybox:bench"
command = ["sleep", "300"]
[[app]]
name = "b"
image = "busybox:bench"
command = ["sleep", "300"]
TOML

b="$berth --config $work/berth.toml"
cat >"$work/berth-steps.sh" <<SH
set -e
$b pod create --name bp >/dev/null
$b run -d --pod bp --name bp-a busybox:bench sleep 300 >/dev/null
$b run -d --pod bp --name bp-b busybox:bench sleep 300 >/dev/null
$b pod rm -f bp >/dev/null
SH
cat >"$work/berth-manifest.sh" <<SH
set -e
$b pod run --manifest $work/pod.toml >/dev/null
$b pod rm -f bp >/dev/null
SH
# podman as DESIGN.md found it to run here: runc, cgroupfs, limits within this machine's (in
# containers.conf, so that its pause container gets them too).
cat >"$work/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
CONF
export CONTAINERS_CONF=$work/containers.conf
p="podman --runtime runc --cgroup-manager cgroupfs"
cat >"$work/podman.sh" <<SH
set -e
$p pod create --name pp >/dev/null
$p run -d --pod pp localhost/busybox:bench sleep 300 >/dev/null
$p run -d --pod pp localhost/busybox:bench sleep 300 >/dev/null
$p pod rm -f -t 0 pp >/dev/null
SH
# Each must work once before it is timed.
for script in berth-steps berth-manifest podman; do bash "$work/$script.sh"; done

hyperfine -N --warmup 2 --runs "$runs" --export-json "$work/results.json" \
    -n berth-steps "bash $work/berth-steps.sh" \
    -n berth-manifest "bash $work/berth-manifest.sh" \
    -n podman "bash $work/podman.sh" >/dev/null

python3 - "$work/results.json" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
median = {name: r["median"] * 1000 for name, r in results.items()}
for name, ms in median.items():
    print(f"{name:<15} median {ms:8.2f} ms   (min {results[name]['min']*1000:.2f}, max {results[name]['max']*1000:.2f}, n={len(results[name]['times'])})")
for name in ("berth-steps", "berth-manifest"):
    print(f"ratio {name} / podman {median[name] / median['podman']:6.3f}x   (target <= 0.3x)")
PY
