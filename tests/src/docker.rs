//! The real dockerd `scripts/daemons.sh` starts: a busybox image in it, and `docker` CLI
//! helpers to observe what berth asked for, the way a platform team would check.

use std::process::Command;
use std::sync::OnceLock;

use crate::env::{BerthEnv, busybox_rootfs};

/// Config lines adding a `docker` backend on the default socket.
pub const DOCKER_BACKEND: &str = "[backends.docker]\ntype = \"docker\"\n\n";

/// `berth-test/busybox:local` in dockerd, imported once per test process from the busybox
/// rootfs (`docker import`, as DESIGN.md describes).
pub fn busybox_image() -> &'static str {
    static IMAGE: OnceLock<&'static str> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let image = "berth-test/busybox:local";
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "tar -C '{}' -c . | docker import - {image} >/dev/null",
                busybox_rootfs().display()
            ))
            .status()
            .unwrap();
        assert!(
            status.success(),
            "docker import failed: is dockerd up? (scripts/daemons.sh start)"
        );
        image
    })
}

/// `docker <args>`, stdout trimmed; panics unless it succeeds.
#[track_caller]
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One Go-template field of `docker inspect`.
#[track_caller]
pub fn docker_inspect(object: &str, format: &str) -> String {
    docker(&["inspect", "--format", format, object])
}

/// A berth installation with native and docker backends and the busybox image in dockerd.
pub fn docker_env(extra: &str) -> BerthEnv {
    busybox_image();
    BerthEnv::new(&format!("{DOCKER_BACKEND}{extra}"))
}
