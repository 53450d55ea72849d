# Shared by the benchmarks (sourced).

# busybox_rootfs DIR: a root filesystem of Debian's busybox-static with every applet linked.
busybox_rootfs() {
    mkdir -p "$1/bin"
    cp /bin/busybox "$1/bin/"
    for applet in $(/bin/busybox --list); do
        [[ -e "$1/bin/$applet" ]] || ln -s busybox "$1/bin/$applet"
    done
}
