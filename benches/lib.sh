# Shared by the benchmarks (sourced).

# busybox_rootfs DIR: a root filesystem of Debian's busybox-static with every applet linked.
busybox_rootfs() {
    mkdir -p "$1/bin"
    cp /bin/busybox "$1/bin/"
    for applet in $(/bin/busybox --list); do
        [[ -e "$1/bin/$applet" ]] || ln -s busybox "$1/bin/$applet"
    done
}

# native_config FILE WORK: a berth.toml with the native backend alone, its state under WORK.
native_config() {
    cat >"$1" <<TOML
[host]
state-dir = "$2/state"
run-dir = "$2/run"
[backends.native]
type = "native"
TOML
}

# plugins_config FILE WORK: examples/berth.toml (the three example plugins), its state under WORK.
plugins_config() {
    sed -e "s#^state-dir = .*#state-dir = \"$2/state\"#" -e "s#^run-dir = .*#run-dir = \"$2/run\"#" \
        -e "s#\.\./plugins/#$PWD/plugins/#" examples/berth.toml >"$1"
}

# ctr_import_rootfs DIR NAMESPACE: DIR as image busybox:bench in docker and in containerd's
# NAMESPACE (through docker save, which gives ctr an archive it imports); prints ctr's name.
# Each step returns on failure: a command substitution does not inherit `set -e`.
ctr_import_rootfs() {
    tar -C "$1" -c . | docker import - busybox:bench >/dev/null || return
    docker save busybox:bench | ctr -n "$2" images import --digests - >/dev/null || return
    ctr -n "$2" images ls -q | grep busybox:bench | head -n1
}
