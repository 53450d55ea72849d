//! The loopback registry `scripts/daemons.sh` starts on 127.0.0.1:5000, and a busybox image in
//! it, pushed once per test process with skopeo from an OCI layout written here.

use std::process::Command;
use std::sync::OnceLock;

use crate::archives::{layer, oci_layout};

pub const REGISTRY: &str = "127.0.0.1:5000";

/// `127.0.0.1:5000/berth-test/busybox:local`, present in the registry; its default command
/// lists /etc and echoes the marker `registry`.
pub fn busybox_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let image = format!("{REGISTRY}/berth-test/busybox:local");
        let dir = tempfile::tempdir().unwrap();
        oci_layout(dir.path(), "registry", &[layer(true, &[])]);
        let out = Command::new("skopeo")
            .args(["copy", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:registry", dir.path().display()))
            .arg(format!("docker://{image}"))
            .output()
            .expect("skopeo missing: run scripts/setup.sh");
        assert!(
            out.status.success(),
            "pushing {image} failed (is the registry up? scripts/daemons.sh start): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        image
    })
}
