#!/usr/bin/env bash
# Import throughput of a 100 MiB docker-archive of four layers (real binaries and libraries, so
# they compress and hash like an image's): `berth image import` on the native backend (verify,
# extract each layer, record the image) against `ctr images import` (content store and unpack
# into the overlayfs snapshotter) and `docker load`, each into an empty store, three runs each,
# alternating. Prints medians in MB/s of archive and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${SIZE_MIB:-100}
runs=${RUNS:-3}

scripts/setup.sh
cargo build --release -p berth-cli
started=$(scripts/daemons.sh start)
work=$(mktemp -d)
berth=$PWD/target/release/berth
cleanup() {
    docker rmi -f berth-import:bench >/dev/null 2>&1 || true
    for ns in $(ctr namespaces ls -q | grep '^berth-import-'); do
        ctr -n "$ns" images rm $(ctr -n "$ns" images ls -q) >/dev/null 2>&1 || true
        ctr -n "$ns" content rm $(ctr -n "$ns" content ls -q) >/dev/null 2>&1 || true
        ctr -n "$ns" snapshots rm $(ctr -n "$ns" snapshots ls | awk 'NR>1 {print $1}') >/dev/null 2>&1 || true
        ctr namespaces rm "$ns" >/dev/null 2>&1 || true
    done
    scripts/daemons.sh stop $started
    rm -rf "$work"
}
trap cleanup EXIT

# Four layers of real files, a quarter of the size each.
budget=$(((size_mib << 20) / 4))
find /usr/lib /usr/bin /usr/share -xdev -type f -size -16M -readable 2>/dev/null | sort >"$work/files" || true
layer=0 left=$budget
mkdir -p "$work/context/layer0"
while read -r f && ((layer < 4)); do
    size=$(stat -c %s "$f")
    ((size <= left)) || continue
    cp "$f" "$work/context/layer$layer/$(echo "$f" | tr / _)"
    left=$((left - size))
    if ((left < 4096)); then
        layer=$((layer + 1)) left=$budget
        ((layer < 4)) && mkdir -p "$work/context/layer$layer"
    fi
done <"$work/files"
printf 'FROM scratch\nCOPY layer0 /data/0\nCOPY layer1 /data/1\nCOPY layer2 /data/2\nCOPY layer3 /data/3\n' \
    >"$work/context/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t berth-import:bench "$work/context" >/dev/null
docker save berth-import:bench -o "$work/image.tar"
docker rmi -f berth-import:bench >/dev/null
sync

python3 - "$berth" "$work" "$runs" <<'PY'
import os, statistics, subprocess, sys, time
berth, work, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
archive = f"{work}/image.tar"
mb = os.path.getsize(archive) / 1e6

def seconds(command, before=None):
    if before:
        before()
    subprocess.run(["sync"], check=True)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started

def berth_config(i):
    path = f"{work}/berth-{i}.toml"
    with open(path, "w") as f:
        f.write(f'[host]\nstate-dir = "{work}/state-{i}"\nrun-dir = "{work}/run-{i}"\n'
                '[backends.native]\ntype = "native"\n')
    return path

drop_docker = lambda: subprocess.run(["docker", "rmi", "-f", "berth-import:bench"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
samples = {"berth image import": [], "ctr images import": [], "docker load": []}
for i in range(runs):
    samples["berth image import"].append(seconds([berth, "--config", berth_config(i), "image", "import", archive]))
    samples["ctr images import"].append(seconds(["ctr", "-n", f"berth-import-{i}", "images", "import", archive]))
    samples["docker load"].append(seconds(["docker", "load", "-q", "-i", archive], drop_docker))
    subprocess.run(["rm", "-rf", f"{work}/state-{i}", f"{work}/run-{i}"], check=True)
rate = {name: mb / statistics.median(s) for name, s in samples.items()}
print(f"archive {mb:.1f} MB, four layers")
for name, r in rate.items():
    print(f"{name:<20} {mb / r:6.3f} s   {r:7.1f} MB/s   (median of {runs})")
b = rate["berth image import"]
print(f"ratio berth / ctr      {b / rate['ctr images import']:5.2f}x")
print(f"ratio berth / docker   {b / rate['docker load']:5.2f}x")
PY
