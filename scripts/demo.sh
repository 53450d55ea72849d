#!/usr/bin/env bash
# The main job, from a fresh machine: install, build berth and its example plugins, import a
# busybox image made from Debian's busybox-static, and run examples/hello.toml on the embedded
# native backend through the naming, selector and guard plugins (examples/berth.toml).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release -p berth-cli
scripts/build-plugins.sh

berth=target/release/berth
export BERTH_CONFIG=examples/berth.toml

# Read the whole listing before matching: grep -q would close the pipe early.
if ! grep -q '"busybox:local"' <<<"$("$berth" image ls --json)"; then
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs"' EXIT
    mkdir -p "$rootfs/bin"
    cp /bin/busybox "$rootfs/bin/busybox"
    for applet in $("$rootfs/bin/busybox" --list); do
        [[ -e "$rootfs/bin/$applet" ]] || ln -s busybox "$rootfs/bin/$applet"
    done
    "$berth" image import --rootfs "$rootfs" busybox:local
fi

"$berth" backend ls
"$berth" plugin ls
"$berth" run --rm --spec examples/hello.toml
