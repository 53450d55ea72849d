#!/usr/bin/env python3
"""The images critest runs, offline: OCI-layout tarballs of a one-layer root filesystem made
from Debian's busybox-static, written to the current directory as NAME.tar, one per line of
IMAGES (file name, image reference, image config), each printed as `NAME.tar REFERENCE`: the
images to import.

The image-manager specs pull theirs (PULLED, printed `NAME.tar REFERENCE pulled`): critest.sh
serves them from a loopback registry that berth's `[registries."HOST"] mirror` puts in their
registries' place, so they keep their names. An entry with several references is one image
under each of them.

Debian's busybox has no pgrep applet, which critest's exec checks call; a small shell pgrep
stands in for it.
"""
import gzip, hashlib, io, json, subprocess, tarfile

PGREP = b"""#!/bin/sh
# pgrep NAME: the pids whose command is NAME (this busybox has no pgrep applet).
status=1
for dir in /proc/[0-9]*; do
    read -r comm < "$dir/comm" 2>/dev/null || continue
    if [ "$comm" = "$1" ]; then echo "${dir#/proc/}"; status=0; fi
done
exit $status
"""

PATH_ENV = ["PATH=/bin"]
WEB = {"Env": PATH_ENV, "Entrypoint": ["/bin/httpd", "-f", "-p", "80", "-h", "/www"],
       "ExposedPorts": {"80/tcp": {}}}
# Apache's image announces its command line on start, which critest looks for in the log.
HTTPD = {**WEB, "Entrypoint": ["/bin/sh", "-c", "echo \"AH00094: Command line: 'httpd -D FOREGROUND'\" >&2; "
                                               "exec /bin/httpd -f -p 80 -h /www"]}
IMAGES = [
    ("busybox", "registry.k8s.io/e2e-test-images/busybox:1.29-2", {"Env": PATH_ENV, "Cmd": ["sh"]}),
    ("nginx", "registry.k8s.io/e2e-test-images/nginx:1.14-2", WEB),
    ("httpd", "registry.k8s.io/e2e-test-images/httpd:2.4.39-4", HTTPD),
    # containerd's CRI makes its sandboxes from a pause image (berth's need none).
    ("pause", "registry.k8s.io/pause:3.6", {"Env": PATH_ENV, "Entrypoint": ["/bin/sleep", "2147483647"]}),
]

# cri-tools' pkg/validate/consts.go; test-image-digest is pinned to a digest only its upstream
# content has, so it is not here.
CRI_TOOLS = "gcr.io/k8s-staging-cri-tools/"
BASE = {"Env": PATH_ENV, "Cmd": ["sh"]}
PULLED = [
    ("test-image-latest", [CRI_TOOLS + "test-image-latest:latest"], BASE),
    ("test-image-tag", [CRI_TOOLS + "test-image-tag:test", CRI_TOOLS + "test-image-tag:all"], BASE),
    # Three images, then one image under three tags.
    *[(f"test-image-{n}", [CRI_TOOLS + f"test-image-{n}:latest"], BASE) for n in (1, 2, 3)],
    ("test-image-tags", [CRI_TOOLS + f"test-image-tags:{n}" for n in (1, 2, 3)], BASE),
    ("test-image-user-uid", [CRI_TOOLS + "test-image-user-uid:latest"], {**BASE, "User": "1002"}),
    ("test-image-user-username", [CRI_TOOLS + "test-image-user-username:latest"],
     {**BASE, "User": "www-data"}),
    ("test-image-user-uid-group", [CRI_TOOLS + "test-image-user-uid-group:latest"],
     {**BASE, "User": "1003:users"}),
    ("test-image-user-username-group", [CRI_TOOLS + "test-image-user-username-group:latest"],
     {**BASE, "User": "www-data:www-data"}),
    # The same image from two registries.
    ("pause-3.9", ["registry.k8s.io/pause:3.9", "k8s.gcr.io/pause:3.9"],
     {"Env": PATH_ENV, "Entrypoint": ["/bin/sleep", "2147483647"]}),
]


def rootfs_layer():
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        def add(name, data=None, mode=0o644, kind=tarfile.REGTYPE, link=""):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.linkname = kind, mode, link
            info.size = len(data) if data is not None else 0
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
        for name in ["bin", "etc", "tmp", "root", "proc", "sys", "dev", "var", "var/log", "www", "home"]:
            add(name, mode=0o1777 if name == "tmp" else 0o755, kind=tarfile.DIRTYPE)
        with open("/usr/bin/busybox", "rb") as busybox:
            add("bin/busybox", busybox.read(), 0o755)
        applets = subprocess.run(["/usr/bin/busybox", "--list"], capture_output=True,
                                 text=True, check=True).stdout.split()
        for applet in applets:
            if applet != "busybox":
                add("bin/" + applet, kind=tarfile.SYMTYPE, link="busybox")
        if "pgrep" not in applets:
            add("bin/pgrep", PGREP, 0o755)
        add("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n")
        add("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
        add("www/index.html", b"<html>hello from berth's critest image</html>\n")
    return out.getvalue()


def write_layout(path, reference, config, layer):
    blobs = {}

    def blob(data):
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"digest": "sha256:" + digest, "size": len(data)}

    packed = blob(gzip.compress(layer, mtime=0))
    image_config = {"architecture": "amd64", "os": "linux", "config": config,
                    "rootfs": {"type": "layers",
                               "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   **blob(json.dumps(image_config).encode())},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **packed}],
    }
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        **blob(json.dumps(manifest).encode()),
        "annotations": {"io.containerd.image.name": reference,
                        "org.opencontainers.image.ref.name": reference.rsplit(":", 1)[1]},
    }]}
    with tarfile.open(path, "w") as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", json.dumps(index).encode())
        for digest, data in blobs.items():
            add("blobs/sha256/" + digest, data)


if __name__ == "__main__":
    layer = rootfs_layer()
    for name, reference, config in IMAGES:
        write_layout(name + ".tar", reference, config, layer)
        print(name + ".tar", reference)
    for name, references, config in PULLED:
        # Each its own image (an image id is its config's digest), whatever it shares.
        config = {**config, "Labels": {**config.get("Labels", {}), "critest-image": name}}
        write_layout(name + ".tar", references[0], config, layer)
        for reference in references:
            print(name + ".tar", reference, "pulled")
