#!/usr/bin/env bash
# One `run --rm IMAGE /bin/true`, timed end to end: berth on the native backend (no plugins, and
# the three example plugins), berth on the docker and containerd backends, `ctr run --rm` and
# `docker run --rm`, all with the same busybox image built from Debian's busybox-static. Prints
# medians and ratios measured in this one run.
# Targets: native <= 0.5x ctr; the three plugins add <= 2 ms per run; berth on docker <= 1.10x
# docker; berth on containerd <= 1.10x ctr.
#
# The plugins' cost is measured apart, with and without plugins alternating run by run, and with
# a pause before each run. A container's creation in the kernel (namespaces, cgroups) takes
# 10 ms to 30 ms depending on how long ago the previous container went away: back to back, any
# extra work before the start, the plugins' or a plain 1.5 ms busy loop alike, lands the next
# creation in the slower part of that range and would be charged to the plugins. The pause puts
# every run in the same place. `create` and `rm` alone, where no container starts, show the
# plugins' cost per berth process with very little noise.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
runs=${RUNS:-30}  # each of the six commands; the plugins' comparison runs PLUGIN_RUNS pairs

scripts/setup.sh
cargo build --release -p berth-cli
scripts/build-plugins.sh
started=$(scripts/daemons.sh start)
work=$(mktemp -d)
trap "scripts/daemons.sh stop $(echo $started); rm -rf '$work'" EXIT
berth=$PWD/target/release/berth

# One rootfs, three stores.
busybox_rootfs "$work/rootfs"
ctr_image=$(ctr_import_rootfs "$work/rootfs" berth-bench)

native_config "$work/plain.toml" "$work"
# The same, with Docker as a second backend: what a platform team moving onto Docker configures.
cat "$work/plain.toml" - >"$work/docker.toml" <<TOML
[backends.docker]
type = "docker"
TOML
# containerd in the namespace ctr uses below, so both run the very same image.
cat "$work/plain.toml" - >"$work/containerd.toml" <<TOML
[backends.containerd]
type = "containerd"
namespace = "berth-bench"
TOML
plugins_config "$work/plugins.toml" "$work"
"$berth" --config "$work/plain.toml" image import --rootfs "$work/rootfs" busybox:bench >/dev/null

hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/results.json" \
    -n berth-native "$berth --config $work/plain.toml run --rm --name bench-run --memory 32m busybox:bench /bin/true" \
    -n berth-docker "$berth --config $work/docker.toml run --rm --backend docker busybox:bench /bin/true" \
    -n berth-containerd "$berth --config $work/containerd.toml run --rm --backend containerd busybox:bench /bin/true" \
    -n ctr "ctr -n berth-bench run --rm $ctr_image berth-bench /bin/true" \
    -n docker "docker run --rm busybox:bench /bin/true" >/dev/null

python3 - "$work/results.json" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
median = {name: r["median"] * 1000 for name, r in results.items()}
for name, ms in median.items():
    print(f"{name:<26} median {ms:8.2f} ms   (min {results[name]['min']*1000:.2f}, max {results[name]['max']*1000:.2f}, n={len(results[name]['times'])})")
n, bd, bc, c, d = (median[k] for k in ("berth-native", "berth-docker", "berth-containerd", "ctr", "docker"))
print(f"ratio berth-native / ctr      {n / c:6.3f}x   (target <= 0.5x)")
print(f"ratio berth-native / docker   {n / d:6.3f}x")
print(f"ratio berth-docker / docker   {bd / d:6.3f}x   (target <= 1.10x)")
print(f"ratio berth-containerd / ctr  {bc / c:6.3f}x   (target <= 1.10x)")
PY

python3 - "$berth" "$work" "${PLUGIN_RUNS:-100}" <<'PY'
import statistics, subprocess, sys, time
berth, work, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
def timed(config, *args):
    if args[0] == "run":
        time.sleep(0.2)  # see the comment at the top
    started = time.perf_counter()
    subprocess.run([berth, "--config", f"{work}/{config}.toml", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - started) * 1000
steps = {
    "run --rm": lambda c: [timed(c, "run", "--rm", "--name", "bench-run", "--memory", "32m", "busybox:bench", "/bin/true")],
    "create, rm": lambda c: [timed(c, "create", "--name", "bench-run", "--memory", "32m", "busybox:bench", "/bin/true"),
                             timed(c, "rm", "bench-run")],
}
for step, measure in steps.items():
    samples = {"plain": [], "plugins": []}
    for i in range(runs + 3):
        for config in ("plain", "plugins") if i % 2 == 0 else ("plugins", "plain"):
            times = measure(config)
            if i >= 3:  # warm-up
                samples[config].append(times)
    for j, name in enumerate(step.split(", ")):
        plain, plugins = (statistics.median(t[j] for t in samples[c]) for c in ("plain", "plugins"))
        print(f"{name:<9} without plugins {plain:7.2f} ms   with the three {plugins:7.2f} ms   "
              f"plugins add {plugins - plain:5.2f} ms   (medians of {runs} alternating runs)")
print("target: the three plugins add <= 2 ms per run")
PY
