#!/usr/bin/env bash
# A kubelet's pod, end to end over the CRI: `berth cri serve` (native backend, the default name
# policy loaded) against containerd's own CRI plugin (Debian's containerd 1.6 with runc, a
# private instance with its own state and CNI config), both driven by crictl in one run, both
# in one network namespace made for the run. Timed: a sandbox and one container up and
# running (runp, create, start), and the same torn down (stopp, rmp). Target: berth at most
# 0.5x containerd. With CRITEST=1 (the default) it also runs critest's focus against each
# and prints both pass counts (target: berth passes at least as many).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
runs=${RUNS:-15}
tools=${BERTH_CRITEST_TOOLS:-/work/shared/tools}
focus='Runtime info|PodSandbox|Container runtime|Idempotence|Image Manager|Networking|Streaming|Multiple Containers'
skip='AppArmor|SELinux|NRI|Image Volume'

scripts/setup.sh
cargo build --release -p berth-cli
scripts/build-plugins.sh >/dev/null
berth=$repo/target/release/berth
work=$(mktemp -d /tmp/berth-bench-cri.XXXXXX)
netns=berth-bench-cri-$$
servers=()
cleanup() {
    # Pods first: containerd's shims outlive containerd itself.
    for name in berth containerd; do
        [ -S "$work/$name.sock" ] && nsenter --net="/run/netns/$netns" "$work/crictl" \
            --runtime-endpoint "unix://$work/$name.sock" rmp -fa >/dev/null 2>&1 || true
    done
    for pid in "${servers[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${servers[@]}"; do wait "$pid" 2>/dev/null || true; done
    ip netns delete "$netns" 2>/dev/null || true
    # What containerd left mounted under its state (sandbox shm), innermost first.
    awk -v w="$work" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | xargs -r umount 2>/dev/null || true
    rm -rf "$work" /tmp/berth-bench-cri-logs
}
trap cleanup EXIT
ip netns add "$netns"
ip -n "$netns" link set lo up
in_netns() { nsenter --net="/run/netns/$netns" "$@"; }
gunzip -c "$tools/crictl.gz" >"$work/crictl"
gunzip -c "$tools/critest.gz" >"$work/critest"
chmod +x "$work/crictl" "$work/critest"
images=$(cd "$work" && python3 "$repo/scripts/critest-images.py" | awk '$3 != "pulled" {print $1}')

# berth, as scripts/critest.sh runs it.
cat >"$work/berth.toml" <<EOF
[host]
state-dir = "$work/berth/state"
run-dir = "$work/berth/run"
[backends.native]
type = "native"
[network]
bridge = "berth-bcri0"
subnet = "10.126.0.0/16"
[cri]
listen = "unix://$work/berth.sock"
[[plugins]]
name = "naming"
path = "$repo/plugins/target/wasm32-wasip2/release/berth_naming.wasm"
worlds = ["name-policy"]
EOF
for image in $images; do
    [ "$image" = pause.tar ] || in_netns "$berth" --config "$work/berth.toml" image import "$work/$image" >/dev/null
done
nsenter --net="/run/netns/$netns" "$berth" --config "$work/berth.toml" cri serve >"$work/berth.log" 2>&1 &
servers+=($!)

# containerd's CRI, its own instance: bridge, host-local and portmap from Debian's CNI plugins,
# cgroupfs, and the negative oom_score_adj sandboxes ask for clamped (the kernel refuses it here).
mkdir -p "$work/net.d"
cat >"$work/net.d/10-bench.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "bench", "plugins": [
  {"type": "bridge", "bridge": "ctd-bcri0", "isGateway": true, "ipMasq": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.127.0.0/16"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
cat >"$work/containerd.toml" <<EOF
version = 2
root = "$work/containerd/root"
state = "$work/containerd/state"
[grpc]
  address = "$work/containerd.sock"
[ttrpc]
  address = "$work/containerd-ttrpc.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.6"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$work/net.d"
EOF
nsenter --net="/run/netns/$netns" containerd --config "$work/containerd.toml" >"$work/containerd.log" 2>&1 &
servers+=($!)
for ((i = 0; i < 300; i++)); do
    [ -S "$work/berth.sock" ] && [ -S "$work/containerd.sock" ] && break
    sleep 0.1
done
for socket in berth containerd; do
    [ -S "$work/$socket.sock" ] || { echo "cri bench: $socket did not listen; its log:" >&2; tail -20 "$work/$socket.log" >&2; exit 1; }
done
for image in $images; do
    in_netns ctr --address "$work/containerd.sock" -n k8s.io images import "$work/$image" >/dev/null
done

cat >"$work/pod.json" <<'EOF'
{"metadata": {"name": "bench", "namespace": "default", "uid": "bench-uid", "attempt": 0},
 "log_directory": "/tmp/berth-bench-cri-logs", "linux": {}}
EOF
cat >"$work/container.json" <<'EOF'
{"metadata": {"name": "app"}, "image": {"image": "registry.k8s.io/e2e-test-images/busybox:1.29-2"},
 "command": ["sleep", "300"], "log_path": "app.log", "linux": {}}
EOF
touch "$work/crictl.yaml" # crictl looks beside itself, and warns when it finds nothing
for name in berth containerd; do
    # crictl's warnings (no cgroup parent asked for) go to a file, kept for a failure.
    c="nsenter --net=/run/netns/$netns $work/crictl --runtime-endpoint unix://$work/$name.sock --image-endpoint unix://$work/$name.sock"
    cat >"$work/$name-up.sh" <<EOF
set -e
pod=\$($c runp $work/pod.json 2>>$work/crictl.err)
container=\$($c create \$pod $work/container.json $work/pod.json 2>>$work/crictl.err)
$c start \$container >/dev/null 2>>$work/crictl.err
echo \$pod >$work/$name.pod
EOF
    cat >"$work/$name-down.sh" <<EOF
set -e
pod=\$(cat $work/$name.pod)
$c stopp \$pod >/dev/null 2>>$work/crictl.err
$c rmp \$pod >/dev/null 2>>$work/crictl.err
rm $work/$name.pod
EOF
    cat >"$work/$name-clean.sh" <<EOF
if [ -f $work/$name.pod ]; then bash $work/$name-down.sh; fi
EOF
    # The down benchmark's prepare: a sandbox of its own, after the last run's.
    cat >"$work/$name-fresh.sh" <<EOF
set -e
bash $work/$name-clean.sh
bash $work/$name-up.sh
EOF
    # Each must work once before it is timed.
    if ! { bash "$work/$name-up.sh" && bash "$work/$name-down.sh"; }; then
        echo "cri bench: a pod on $name did not come up and go; crictl said:" >&2
        tail -5 "$work/crictl.err" >&2
        exit 1
    fi
done

hyperfine -N --warmup 2 --runs "$runs" --export-json "$work/results.json" \
    --prepare "bash $work/berth-clean.sh" -n berth-up "bash $work/berth-up.sh" \
    --prepare "bash $work/containerd-clean.sh" -n containerd-up "bash $work/containerd-up.sh" \
    --prepare "bash $work/berth-fresh.sh" -n berth-down "bash $work/berth-down.sh" \
    --prepare "bash $work/containerd-fresh.sh" -n containerd-down "bash $work/containerd-down.sh" >/dev/null
bash "$work/berth-clean.sh"
bash "$work/containerd-clean.sh"

python3 - "$work/results.json" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
median = {name: r["median"] * 1000 for name, r in results.items()}
for name, ms in median.items():
    r = results[name]
    print(f"{name:<16} median {ms:8.2f} ms   (min {r['min']*1000:.2f}, max {r['max']*1000:.2f}, n={len(r['times'])})")
for step in ("up", "down"):
    ratio = median[f"berth-{step}"] / median[f"containerd-{step}"]
    print(f"ratio berth-{step} / containerd-{step} {ratio:6.3f}x   (target <= 0.5x)")
PY

if [ "${CRITEST:-1}" = 1 ]; then
    cat >"$work/images.yaml" <<EOF
defaultTestContainerImage: registry.k8s.io/e2e-test-images/busybox:1.29-2
webServerTestImage: registry.k8s.io/e2e-test-images/nginx:1.14-2
EOF
    for name in berth containerd; do
        in_netns "$work/critest" --runtime-endpoint "unix://$work/$name.sock" \
            --image-endpoint "unix://$work/$name.sock" --test-images-file "$work/images.yaml" \
            -websocket-exec -websocket-attach -websocket-portforward \
            --ginkgo.focus "$focus" --ginkgo.skip "$skip" --ginkgo.no-color \
            --ginkgo.junit-report "$work/$name.xml" >"$work/critest-$name.log" 2>&1 || true
    done
    python3 - "$work/berth.xml" "$work/containerd.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
def counts(path):
    passed = ran = 0
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name", "")
        if case.find("skipped") is not None or not name.startswith("[It]"):
            continue
        ran += 1
        passed += case.find("failure") is None and case.find("error") is None
    return passed, ran
(bp, br), (cp, cr) = counts(sys.argv[1]), counts(sys.argv[2])
print(f"critest berth       {bp} of {br} specs passed")
print(f"critest containerd  {cp} of {cr} specs passed   (target: berth >= containerd)")
PY
fi
