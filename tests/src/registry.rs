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
    push_with(image, marker, &["--dest-tls-verify=false"]);
}

/// As [`push`], with skopeo's destination flags `dest` (`--dest-creds`, `--dest-cert-dir`).
pub fn push_with(image: &str, marker: &str, dest: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    oci_layout(dir.path(), marker, &[layer(true, &[])]);
    let out = Command::new("skopeo")
        .arg("copy")
        .args(dest)
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

/// What an [`OwnRegistry`] demands.
#[derive(Debug, Clone, Copy, Default)]
pub struct Guard {
    /// Basic auth against an htpasswd file holding this one user.
    pub user: Option<(&'static str, &'static str)>,
    /// TLS with a certificate for 127.0.0.1 from a CA of the registry's own
    /// ([`OwnRegistry::ca`]).
    pub tls: bool,
}

impl OwnRegistry {
    pub fn start() -> OwnRegistry {
        OwnRegistry::guarded(Guard::default())
    }

    pub fn guarded(guard: Guard) -> OwnRegistry {
        // A free port can be taken by someone else before the registry binds it: then the
        // registry exits, and it is started again on another.
        for _ in 0..5 {
            if let Some(registry) = OwnRegistry::try_start(guard) {
                return registry;
            }
        }
        panic!("docker-registry could not bind a loopback port in five attempts");
    }

    fn try_start(guard: Guard) -> Option<OwnRegistry> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let storage = tempfile::tempdir().unwrap();
        let dir = storage.path();
        let mut config = format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\n",
            dir.join("data").display()
        );
        if guard.tls {
            certificates(dir);
            config += &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.join("server.pem").display(),
                dir.join("server.key").display()
            );
        }
        if let Some((user, password)) = guard.user {
            let htpasswd = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd missing (apache2-utils): run scripts/setup.sh");
            assert!(htpasswd.status.success());
            std::fs::write(dir.join("htpasswd"), htpasswd.stdout).unwrap();
            config += &format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                dir.join("htpasswd").display()
            );
        }
        let config_file = dir.join("config.yml");
        std::fs::write(&config_file, config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry missing: run scripts/setup.sh");
        let mut registry = OwnRegistry {
            address,
            storage,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&registry.address).is_err() {
            if registry.child.try_wait().unwrap().is_some() {
                return None;
            }
            assert!(Instant::now() < deadline, "docker-registry did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(registry)
    }

    /// The PEM of the CA a TLS registry's certificate is signed by.
    pub fn ca(&self) -> PathBuf {
        self.storage.path().join("certs/ca.crt")
    }

    /// A directory holding only [`OwnRegistry::ca`], as skopeo's `--dest-cert-dir` wants.
    pub fn cert_dir(&self) -> PathBuf {
        self.storage.path().join("certs")
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

/// A CA (`certs/ca.crt`) and a certificate it signed for 127.0.0.1 (`server.pem`,
/// `server.key`) in `dir`, made with openssl.
fn certificates(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    let openssl = |line: &str| {
        let args: Vec<&str> = line.split_whitespace().collect();
        let out = Command::new("openssl")
            .args(&args)
            .current_dir(dir)
            .output()
            .expect("openssl missing: run scripts/setup.sh");
        assert!(
            out.status.success(),
            "openssl {line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    openssl(&format!(
        "req -x509 {key} -keyout ca.key -out certs/ca.crt -days 2 -subj /CN=berth-test-CA"
    ));
    openssl(&format!(
        "req {key} -keyout server.key -out server.csr -subj /CN=127.0.0.1"
    ));
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        "x509 -req -in server.csr -CA certs/ca.crt -CAkey ca.key -CAcreateserial \
         -out server.pem -days 2 -extfile server.ext",
    );
}

/// A loopback port that refuses connections for as long as this lives: a socket is bound to
/// it and never listens, so nobody else can take the port meanwhile.
pub struct ClosedPort {
    _socket: std::os::fd::OwnedFd,
    pub port: u16,
}

pub fn closed_port() -> ClosedPort {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a socket this function owns, with correctly sized
    // sockaddr_in values.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let socket = std::os::fd::OwnedFd::from_raw_fd(fd);
        let mut address: libc::sockaddr_in = std::mem::zeroed();
        address.sin_family = libc::AF_INET as libc::sa_family_t;
        address.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let size = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let bound = libc::bind(fd, (&raw const address).cast(), size);
        assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
        let mut len = size;
        let named = libc::getsockname(fd, (&raw mut address).cast(), &mut len);
        assert_eq!(named, 0, "getsockname: {}", std::io::Error::last_os_error());
        ClosedPort {
            _socket: socket,
            port: u16::from_be(address.sin_port),
        }
    }
}
