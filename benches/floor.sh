#!/usr/bin/env bash
# The kernel's floor: `berth run --rm IMAGE /bin/true` on the native backend, no plugins, against
# `runc run` on a prepared bundle of the very same rootfs (no overlay, no limits, no network: the
# floor any runtime on runc's model pays), then what the three example plugins add to a run.
#
# Wall time is to the exit code; CPU time is every process of the command (berth, its
# supervisor, runc and its init, not the container's own /bin/true, which each runtime moves to
# a cgroup of its own), read from a cpuacct cgroup the command starts in after it has emptied,
# so work left running after the exit code (a teardown in the background) is counted too.
# Commands alternate run by run, so drift on the machine hits both sides alike.
# Targets: berth at most 1.0x runc's wall time; the three plugins add at most 0.5 ms wall per run
# back to back (the pause-separated figure is printed beside it).
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
runs=${RUNS:-30}

scripts/setup.sh
cargo build --release -p berth-cli
scripts/build-plugins.sh
work=$(mktemp -d)
cgroup=/sys/fs/cgroup/cpuacct/berth-floor-$$
mkdir "$cgroup"
trap "rmdir '$cgroup' 2>/dev/null; rm -rf '$work'" EXIT
berth=$PWD/target/release/berth

busybox_rootfs "$work/rootfs"
# runc's own default spec, on the shared rootfs, running /bin/true without a terminal.
mkdir "$work/bundle"
(cd "$work/bundle" && runc spec)
python3 - "$work/bundle/config.json" "$work/rootfs" <<'PY'
import json, sys
path, rootfs = sys.argv[1], sys.argv[2]
spec = json.load(open(path))
spec["root"] = {"path": rootfs, "readonly": True}
spec["process"]["terminal"] = False
spec["process"]["args"] = ["/bin/true"]
json.dump(spec, open(path, "w"))
PY

native_config "$work/plain.toml" "$work"
plugins_config "$work/plugins.toml" "$work"
"$berth" --config "$work/plain.toml" image import --rootfs "$work/rootfs" busybox:bench >/dev/null

python3 - "$berth" "$work" "$cgroup" "$runs" "${PLUGIN_RUNS:-100}" <<'PY'
import os, statistics, subprocess, sys, time
berth, work, cgroup, runs, plugin_runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])

def settled():
    deadline = time.monotonic() + 30
    while open(f"{cgroup}/cgroup.procs").read().strip():
        if time.monotonic() > deadline:
            sys.exit(f"floor: processes still in {cgroup} after 30 s")
        time.sleep(0.001)
    return int(open(f"{cgroup}/cpuacct.usage").read())

def join_cgroup():
    with open(f"{cgroup}/cgroup.procs", "w") as procs:
        procs.write(str(os.getpid()))

def measure(command, pause):
    """(wall ms to the exit code, cpu ms of every process it left in the cgroup)"""
    before = settled()
    if pause:
        time.sleep(pause)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   preexec_fn=join_cgroup)
    wall = (time.perf_counter() - started) * 1000
    return wall, (settled() - before) / 1e6

def alternate(commands, n, pause=0.0, warmup=3):
    samples = {name: [] for name in commands}
    for i in range(n + warmup):
        order = list(commands) if i % 2 == 0 else list(reversed(commands))
        for name in order:
            sample = measure(commands[name], pause)
            if i >= warmup:
                samples[name].append(sample)
    return {name: (statistics.median(w for w, _ in s), statistics.median(c for _, c in s),
                   min(w for w, _ in s), max(w for w, _ in s)) for name, s in samples.items()}

berth_run = lambda config, *flags: [berth, "--config", f"{work}/{config}.toml", "run", "--rm", *flags,
                                    "busybox:bench", "/bin/true"]
floor = alternate({
    "berth run --rm": berth_run("plain", "--network", "none"),
    "runc run": ["runc", "--root", f"{work}/runc", "run", "-b", f"{work}/bundle", "berth-floor"],
}, runs)
for name, (wall, cpu, low, high) in floor.items():
    print(f"{name:<16} wall {wall:7.2f} ms   cpu {cpu:6.2f} ms   (wall min {low:.2f}, max {high:.2f}; medians of {runs} alternating runs)")
(bw, bc, _, _), (rw, rc, _, _) = floor["berth run --rm"], floor["runc run"]
print(f"ratio berth / runc   wall {bw / rw:5.3f}x   cpu {bc / rc:5.3f}x   (target: wall <= 1.0x)")

# The guard plugin refuses a container without a memory limit, the naming plugin one without a
# DNS-label name: both configurations run the same command.
flags = ("--name", "bench-run", "--memory", "32m", "--network", "none")
for pause, label in ((0.0, "back to back"), (0.2, "0.2 s apart")):
    plugins = alternate({"plain": berth_run("plain", *flags), "plugins": berth_run("plugins", *flags)},
                        plugin_runs, pause)
    (pw, pc, _, _), (qw, qc, _, _) = plugins["plain"], plugins["plugins"]
    print(f"run --rm {label:<13} without plugins {pw:6.2f} ms   with the three {qw:6.2f} ms   "
          f"plugins add {qw - pw:5.2f} ms wall, {qc - pc:5.2f} ms cpu   (medians of {plugin_runs} alternating runs)")
print("target: the three plugins add <= 0.5 ms wall per run back to back")
PY
