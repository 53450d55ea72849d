#!/usr/bin/env bash
# Cost that stays flat as the host fills up: `ps`, `inspect` and `run -d` on the native backend
# with 0, 100 and 1000 detached containers running (`sleep`, no network), then 32 `run --rm`
# started at once against 32 `ctr run --rm` started at once, in runs per second.
# Targets: `ps` under 20 ms at 1000 containers; `inspect` and `run -d` flat.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
runs=${RUNS:-20}
sizes=${SIZES:-0 100 1000}
parallel=${PARALLEL:-32}

scripts/setup.sh
cargo build --release -p berth-cli
started=$(scripts/daemons.sh start)
work=$(mktemp -d)
berth=$PWD/target/release/berth
cleanup() {
    "$berth" --config "$work/berth.toml" rm -f $("$berth" --config "$work/berth.toml" ps -aq) >/dev/null 2>&1 || true
    ctr -n berth-scale images rm $(ctr -n berth-scale images ls -q) >/dev/null 2>&1 || true
    scripts/daemons.sh stop $started
    rm -rf "$work"
}
trap cleanup EXIT

busybox_rootfs "$work/rootfs"
native_config "$work/berth.toml" "$work"
"$berth" --config "$work/berth.toml" image import --rootfs "$work/rootfs" busybox:bench >/dev/null
ctr_image=$(ctr_import_rootfs "$work/rootfs" berth-scale)

python3 - "$berth" "$work" "$runs" "$parallel" "$ctr_image" $sizes <<'PY'
import glob, statistics, subprocess, sys, time
berth, work, runs, parallel, ctr_image = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
sizes = [int(s) for s in sys.argv[6:]]
b = [berth, "--config", f"{work}/berth.toml"]

def ms(command):
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - started) * 1000

def median(command, after=None):
    samples = []
    for i in range(runs + 2):
        samples.append(ms(command))
        if after:
            after()
    return statistics.median(samples[2:])

running = 0
for size in sizes:
    while running < size:
        subprocess.run([*b, "run", "-d", "--network", "none", "--name", f"filler-{running}",
                        "busybox:bench", "sleep", "86400"], check=True, stdout=subprocess.DEVNULL)
        running += 1
    ps = median([*b, "ps"])
    ps_a = median([*b, "ps", "-a"])
    inspect = median([*b, "inspect", "filler-0"]) if size else float("nan")
    remove = lambda: subprocess.run([*b, "rm", "-f", "probe"], check=True, stdout=subprocess.DEVNULL)
    run_d = median([*b, "run", "-d", "--network", "none", "--name", "probe", "busybox:bench", "sleep", "86400"], remove)
    # The floor ps stands on: one `cat` of the files it must read (each container's record and
    # its native state; the supervisor's lock it opens too is not counted).
    files = glob.glob(f"{work}/state/containers/*/config.json") + glob.glob(f"{work}/state/native-containers/*/state.json")
    floor = median(["cat", *files]) if files else float("nan")
    print(f"{size:>5} containers   ps {ps:7.2f} ms   ps -a {ps_a:7.2f} ms   inspect {inspect:7.2f} ms   "
          f"run -d {run_d:7.2f} ms   cat of the {len(files)} files ps reads {floor:7.2f} ms   (medians of {runs})")
print("target: ps under 20 ms at 1000 containers")

def burst(commands):
    started = time.perf_counter()
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in commands]
    failed = [c for c, p in zip(commands, procs) if p.wait() != 0]
    if failed:
        sys.exit(f"scale: {len(failed)} of {len(commands)} failed, first: {' '.join(failed[0])}")
    return len(commands) / (time.perf_counter() - started)

berth_burst = [[*b, "run", "--rm", "--network", "none", "busybox:bench", "/bin/true"]] * parallel
ctr_burst = lambda round: [["ctr", "-n", "berth-scale", "run", "--rm", ctr_image,
                            f"scale-{round}-{i}", "/bin/true"] for i in range(parallel)]
rates = {"berth": [], "ctr": []}
for round in range(5):
    rates["berth"].append(burst(berth_burst))
    rates["ctr"].append(burst(ctr_burst(round)))
br, cr = statistics.median(rates["berth"]), statistics.median(rates["ctr"])
print(f"{parallel} parallel run --rm   berth {br:6.1f} runs/s   ctr {cr:6.1f} runs/s   ratio {br / cr:5.2f}x   (medians of 5 bursts)")
PY
