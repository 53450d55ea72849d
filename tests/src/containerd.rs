//! The real containerd `scripts/daemons.sh` starts: a namespace of this test process's own, a
//! busybox image imported into it by berth, and `ctr` helpers to observe what berth did.

use std::process::Command;
use std::sync::OnceLock;

use crate::archives::{docker_archive, layer};
use crate::env::BerthEnv;

/// A containerd namespace unique to this test process, so parallel suites never meet.
pub fn namespace() -> &'static str {
    static NAMESPACE: OnceLock<String> = OnceLock::new();
    NAMESPACE.get_or_init(|| format!("berth-test-{}", std::process::id()))
}

/// `ctr -n <namespace> <args>`, stdout; panics unless it succeeds.
#[track_caller]
pub fn ctr(args: &[&str]) -> String {
    let out = Command::new("ctr")
        .args(["-n", namespace()])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ctr {args:?} failed (is containerd up? scripts/daemons.sh start): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `busybox:local` (stored as `docker.io/library/busybox:local`), imported and unpacked once
/// per test process.
pub fn busybox_image() -> &'static str {
    static IMAGE: OnceLock<()> = OnceLock::new();
    IMAGE.get_or_init(|| import("busybox:local"));
    "busybox:local"
}

/// Imports (and unpacks) a docker-archive of the busybox rootfs tagged `tag` through berth's
/// own import, so every containerd test runs on an image berth stored.
pub fn import(tag: &str) {
    let env = BerthEnv::new(&containerd_backend());
    let archive = env.dir.path().join("image.tar");
    docker_archive(&archive, tag, &[layer(true, &[])], None);
    let path = archive.display().to_string();
    env.berth(&["image", "--backend", "containerd", "import", &path])
        .ok();
}

/// Config lines adding a `containerd` backend in this process's namespace.
pub fn containerd_backend() -> String {
    format!(
        "[backends.containerd]\ntype = \"containerd\"\nnamespace = \"{}\"\n\n",
        namespace()
    )
}

/// A berth installation with native and containerd backends and busybox in containerd.
pub fn containerd_env(extra: &str) -> BerthEnv {
    busybox_image();
    BerthEnv::new(&format!("{}{extra}", containerd_backend()))
}
