#!/usr/bin/env bash
# Starts containerd, dockerd and a loopback registry (127.0.0.1:5000, no TLS, no auth) in the
# background for the tests and waits until they answer. `start` prints the names of the daemons it
# started; `stop NAME...` stops just those, so daemons already running (a developer's, or another
# script's) are left alone:
#   started=$(scripts/daemons.sh start); trap "scripts/daemons.sh stop $started" EXIT
set -euo pipefail

state=/tmp/berth-test-daemons
mkdir -p "$state"

wait_for() { # name timeout-seconds command...
    local name=$1 timeout=$2; shift 2
    for ((i = 0; i < timeout * 10; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "daemons: $name did not become ready within ${timeout}s; its log:" >&2
    tail -n 30 "$state/$name.log" >&2 || true
    return 1
}

start() {
    if ! ctr --address /run/containerd/containerd.sock version >/dev/null 2>&1; then
        containerd >"$state/containerd.log" 2>&1 &
        echo $! >"$state/containerd.pid"
        echo containerd
        wait_for containerd 30 ctr --address /run/containerd/containerd.sock version
    fi
    if ! docker version >/dev/null 2>&1; then
        dockerd --containerd=/run/containerd/containerd.sock >"$state/dockerd.log" 2>&1 &
        echo $! >"$state/dockerd.pid"
        echo dockerd
        wait_for dockerd 60 docker version
    fi
    if ! curl -sf http://127.0.0.1:5000/v2/ >/dev/null 2>&1; then
        mkdir -p "$state/registry"
        printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:5000\n' \
            "$state/registry" >"$state/registry.yml"
        docker-registry serve "$state/registry.yml" >"$state/registry.log" 2>&1 &
        echo $! >"$state/registry.pid"
        echo registry
        wait_for registry 30 curl -sf http://127.0.0.1:5000/v2/
    fi
}

stop() {
    for name in "$@"; do
        if [[ -f "$state/$name.pid" ]]; then
            pid=$(cat "$state/$name.pid")
            kill "$pid" 2>/dev/null || true
            for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
            rm -f "$state/$name.pid"
        fi
    done
}

"$@"
