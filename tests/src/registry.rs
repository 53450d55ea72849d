//! The loopback registry `scripts/daemons.sh` starts on 127.0.0.1:5000, and a busybox image in
//! it, pushed once per test process with skopeo from an OCI layout written here; and registries
//! a test starts for itself, whose storage it may damage.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::archives::{layer, oci_layout};

pub const REGISTRY: &str = "127.0.0.1:5000";

/// `127.0.0.1:5000/berth-test/busybox:local`, present in the registry; its default command
/// lists /etc and echoes the marker `registry`.
pub fn busybox_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let image = format!("{REGISTRY}/berth-test/busybox:local");
        push(&image, "registry");
        image
    })
}

/// Pushes a one-layer busybox image whose default command echoes `marker` as `image`.
pub fn push(image: &str, marker: &str) {
    let dir = tempfile::tempdir().unwrap();
    oci_layout(dir.path(), marker, &[layer(true, &[])]);
    let out = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:{marker}", dir.path().display()))
        .arg(format!("docker://{image}"))
        .output()
        .expect("skopeo missing: run scripts/setup.sh");
    assert!(
        out.status.success(),
        "pushing {image} failed (is the registry up? scripts/daemons.sh start): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `skopeo inspect` of `image`: the registry's `Digest` of its manifest, its `Layers`, ….
pub fn inspect(image: &str) -> serde_json::Value {
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{image}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A `docker-registry` of the test's own on a free loopback port, storing in a temporary
/// directory; stopped when dropped.
pub struct OwnRegistry {
    pub address: String,
    storage: tempfile::TempDir,
    child: Child,
}

impl OwnRegistry {
    pub fn start() -> OwnRegistry {
        let port = free_port();
        let address = format!("127.0.0.1:{port}");
        let storage = tempfile::tempdir().unwrap();
        let config = storage.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\n",
                storage.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry missing: run scripts/setup.sh");
        let registry = OwnRegistry {
            address,
            storage,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&registry.address).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    /// Where the registry keeps blob `sha256:<hex>`.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
