#!/usr/bin/env bash
# Install throughput of a 100 MiB package: `berth pkg install` of an xz .ipk (verify the data
# block's sha256, decompress, extract confined) against `tar -xJf` of the same tree packed by
# `tar -cJf`, one run each as the issue asks. Prints MB/s (of unpacked data) and the ratio.
# Target: berth at least 0.8x tar.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
size_mib=${SIZE_MIB:-100}

scripts/setup.sh
cargo build --release -p berth-cli
work=$(mktemp -d)
trap "rm -rf '$work'" EXIT
berth=$PWD/target/release/berth

# Real files (binaries and libraries) up to the size: text, code and tables compress like a
# real package does.
mkdir -p "$work/src"
budget=$((size_mib << 20))
find /usr/lib /usr/bin /usr/share -xdev -type f -size -16M -readable 2>/dev/null | sort >"$work/files" || true
while read -r f; do
    size=$(stat -c %s "$f")
    ((size <= budget)) || continue
    dest="$work/src/$(echo "$f" | tr / _)"
    cp "$f" "$dest"
    budget=$((budget - size))
    ((budget > 4096)) || break
done <"$work/files"
bytes=$(du -sb "$work/src" | cut -f1)

native_config "$work/berth.toml" "$work"
"$berth" --config "$work/berth.toml" pkg build "$work/src" --name bench --version 1.0.0 -o "$work/bench.ipk" >/dev/null
tar -C "$work/src" -cJf "$work/bench.tar.xz" .
sync

seconds() {
    python3 -c 'import subprocess, sys, time
start = time.monotonic()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(time.monotonic() - start)' "$@"
}
mkdir "$work/tar-out"
tar_s=$(seconds tar -C "$work/tar-out" -xJf "$work/bench.tar.xz")
berth_s=$(seconds "$berth" --config "$work/berth.toml" pkg install "$work/bench.ipk")

python3 - "$bytes" "$tar_s" "$berth_s" "$(stat -c %s "$work/bench.ipk")" "$(stat -c %s "$work/bench.tar.xz")" <<'PY'
import sys
size, tar_s, berth_s, ipk, txz = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
mb = size / 1e6
print(f"data {mb:.1f} MB; .ipk {ipk / 1e6:.1f} MB, .tar.xz {txz / 1e6:.1f} MB")
print(f"tar -xJf            {tar_s:7.3f} s  {mb / tar_s:8.1f} MB/s")
print(f"berth pkg install   {berth_s:7.3f} s  {mb / berth_s:8.1f} MB/s")
print(f"ratio berth / tar   {tar_s / berth_s:6.3f}x   (target >= 0.8x)")
PY
