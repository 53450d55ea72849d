#!/usr/bin/env bash
# cri-tools' conformance suite (critest) against `berth cri serve` on the native backend, with the
# default name policy loaded, offline: the images critest names are built from Debian's
# busybox-static and imported first; the ones the image-manager specs pull are served by a
# loopback docker-registry that berth's `mirror` puts in their registries' place. The server, the
# registry and critest run in a network namespace of their own (entered with nsenter --net, which
# keeps /sys and the cgroup mounts), so the suite's traffic stays inside it. critest itself is
# the prebuilt one in $BERTH_CRITEST_TOOLS.
#
# Prints the pass count and fails if a spec listed in tests/critest/passing.txt did not pass;
# specs that pass and are not listed are printed, to be added (the list only grows).
#   scripts/critest.sh [FOCUS]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
tools=${BERTH_CRITEST_TOOLS:-/work/shared/tools}
focus=${1:-'Runtime info|PodSandbox|Container runtime|Idempotence|Image Manager|Networking|Streaming|Multiple Containers'}
skip='AppArmor|SELinux|NRI|Image Volume'
passing=tests/critest/passing.txt
berth=$repo/target/release/berth

work=$(mktemp -d /tmp/berth-critest.XXXXXX)
netns=berth-critest-$$
server=
registry=
cleanup() {
    if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null && wait "$server" 2>/dev/null || true; fi
    if [ -n "$registry" ]; then kill -TERM "$registry" 2>/dev/null && wait "$registry" 2>/dev/null || true; fi
    if [ -f "$work/berth.toml" ] && [ -e "/run/netns/$netns" ]; then
        local b=("nsenter" "--net=/run/netns/$netns" "$berth" --config "$work/berth.toml")
        pods=$("${b[@]}" pod ls --json 2>/dev/null | python3 -c 'import json,sys; print(" ".join(p["id"] for p in json.load(sys.stdin)))' || true)
        [ -z "$pods" ] || "${b[@]}" pod rm -f $pods >/dev/null 2>&1 || true
        containers=$("${b[@]}" ps -a -q 2>/dev/null || true)
        [ -z "$containers" ] || "${b[@]}" rm -f $containers >/dev/null 2>&1 || true
        "${b[@]}" gc >/dev/null 2>&1 || true
    fi
    ip netns delete "$netns" 2>/dev/null || true
    umount -R "$work/state" 2>/dev/null || true
    if [ -n "${BERTH_CRITEST_KEEP:-}" ]; then echo "critest: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

gunzip -c "$tools/critest.gz" >"$work/critest"
chmod +x "$work/critest"
images=$(cd "$work" && python3 "$repo/scripts/critest-images.py")

cat >"$work/berth.toml" <<EOF
[host]
state-dir = "$work/state"
run-dir = "$work/run"

[backends.native]
type = "native"

[network]
bridge = "berth-cri0"
subnet = "10.123.0.0/16"

[cri]
listen = "unix://$work/cri.sock"

[[plugins]]
name = "naming"
path = "$repo/plugins/target/wasm32-wasip2/release/berth_naming.wasm"
worlds = ["name-policy"]

# The namespace's own loopback registry serves what these registries would.
[registries."gcr.io"]
mirror = "127.0.0.1:5000"
[registries."registry.k8s.io"]
mirror = "127.0.0.1:5000"
[registries."k8s.gcr.io"]
mirror = "127.0.0.1:5000"
EOF
cat >"$work/images.yaml" <<EOF
defaultTestContainerImage: registry.k8s.io/e2e-test-images/busybox:1.29-2
webServerTestImage: registry.k8s.io/e2e-test-images/nginx:1.14-2
EOF

ip netns add "$netns"
ip -n "$netns" link set lo up
in_netns() { nsenter --net="/run/netns/$netns" "$@"; }

while read -r file reference pulled; do
    [ "$file" = pause.tar ] && continue # containerd's sandboxes need it, berth's do not
    [ -z "$pulled" ] || continue
    in_netns "$berth" --config "$work/berth.toml" image import "$work/$file" >/dev/null
done <<<"$images"

mkdir -p "$work/registry"
printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:5000\n' \
    "$work/registry" >"$work/registry.yml"
nsenter --net="/run/netns/$netns" docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry=$!
for ((i = 0; i < 100; i++)); do
    in_netns curl -sf http://127.0.0.1:5000/v2/ >/dev/null && break
    sleep 0.1
done
in_netns curl -sf http://127.0.0.1:5000/v2/ >/dev/null || { echo "critest: the registry did not start; its log:" >&2; cat "$work/registry.log" >&2; exit 1; }
# Each under its path on the mirror: gcr.io/a/b:t is 127.0.0.1:5000/a/b:t.
while read -r file reference pulled; do
    [ -n "$pulled" ] || continue
    in_netns skopeo copy --quiet --dest-tls-verify=false "oci-archive:$work/$file" "docker://127.0.0.1:5000/${reference#*/}"
done <<<"$images"

# nsenter execs the server, so $! is the server itself (SIGTERM at cleanup).
nsenter --net="/run/netns/$netns" "$berth" --config "$work/berth.toml" cri serve >"$work/server.log" 2>&1 &
server=$!
for ((i = 0; i < 200; i++)); do
    [ -S "$work/cri.sock" ] && break
    sleep 0.1
done
[ -S "$work/cri.sock" ] || { echo "critest: berth cri serve did not listen; its log:" >&2; cat "$work/server.log" >&2; exit 1; }

set +e
in_netns "$work/critest" \
    --runtime-endpoint "unix://$work/cri.sock" --image-endpoint "unix://$work/cri.sock" \
    --test-images-file "$work/images.yaml" \
    -websocket-exec -websocket-attach -websocket-portforward \
    --ginkgo.focus "$focus" --ginkgo.skip "$skip" \
    --ginkgo.no-color --ginkgo.junit-report "$work/junit.xml" >"$work/critest.log" 2>&1
set -e

# With a focus of one's own, only the recorded specs it ran are held to the list.
python3 - "$work/junit.xml" "$passing" "${1:+partial}" <<'EOF'
import sys, xml.etree.ElementTree as ET
junit, listed_file, partial = sys.argv[1], sys.argv[2], sys.argv[3] == "partial"
passed, failed = set(), []
for case in ET.parse(junit).getroot().iter('testcase'):
    name = case.get('name', '').strip()
    if case.find('skipped') is not None or name.startswith('[SynchronizedBeforeSuite]') or name.startswith('[SynchronizedAfterSuite]') or name.startswith('[BeforeSuite]') or name.startswith('[AfterSuite]') or name.startswith('[ReportAfterSuite]'):
        continue
    if case.find('failure') is None and case.find('error') is None:
        passed.add(name)
    else:
        failed.append(name)
try:
    listed = {l.strip() for l in open(listed_file) if l.strip() and not l.startswith('#')}
except FileNotFoundError:
    listed = set()
ran = len(passed) + len(failed)
print(f"critest: {len(passed)} of {ran} specs passed ({len(listed)} recorded as passing)")
for name in sorted(failed):
    print(f"  failed: {name}")
lost = sorted((listed & (passed | set(failed)) if partial else listed) - passed)
new = sorted(passed - listed)
for name in new:
    print(f"  passes, not yet recorded in {listed_file}: {name}")
if lost:
    print(f"critest: {len(lost)} recorded spec(s) no longer pass:", file=sys.stderr)
    for name in lost:
        print(f"  {name}", file=sys.stderr)
    sys.exit(1)
EOF
