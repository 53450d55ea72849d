#!/usr/bin/env bash
# Installs what berth needs to build and test on a fresh Debian 12 machine (as root):
# apt packages, the wasm32-wasip2 Rust target, protoc. Safe to run again: it skips what is there.
set -euo pipefail

packages=(busybox-static protobuf-compiler docker.io containerd runc docker-registry btrfs-progs skopeo
    apache2-utils openssl hyperfine curl python3 xz-utils xfsprogs containernetworking-plugins iproute2 iptables)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "setup: adding the wasm32-wasip2 target"
    rustup target add wasm32-wasip2
fi
