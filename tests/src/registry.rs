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
    pub tokens: Option<TokenService>,
}

/// What an [`OwnRegistry`] demands.
#[derive(Debug, Clone, Copy, Default)]
pub struct Guard {
    /// This one user: by basic auth against an htpasswd file, or with `bearer` through a
    /// token service.
    pub user: Option<(&'static str, &'static str)>,
    /// Bearer tokens from a [`TokenService`] of the registry's own, as Docker Hub does.
    pub bearer: bool,
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
        let tokens = match guard.user {
            Some(user) if guard.bearer => Some(TokenService::start(dir, user)),
            _ => None,
        };
        if let Some(tokens) = &tokens {
            config += &format!(
                "auth:\n  token:\n    realm: http://{}/token\n    service: {TOKEN_AUDIENCE}\n    \
                 issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                tokens.address,
                dir.join("token.crt").display()
            );
        } else if let Some((user, password)) = guard.user {
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
            tokens,
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

const TOKEN_ISSUER: &str = "berth-test-issuer";
const TOKEN_AUDIENCE: &str = "berth-test-registry";

/// The identity token a [`TokenService`] takes for its user by OAuth2's refresh grant (what a
/// registry's login hands out in place of a password).
pub const REFRESH_TOKEN: &str = "berth-test-refresh-token";

/// A registry's token service, as Docker Hub's `auth.docker.io`: it answers a request that
/// carries the one user's password (basic auth), or a refresh grant with [`REFRESH_TOKEN`],
/// with a JWT for the scope asked for, signed by
/// a key whose certificate is the registry's `rootcertbundle`, and any other with 401. Every
/// request's path and query is kept, for the test to read.
pub struct TokenService {
    pub address: String,
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl TokenService {
    fn start(dir: &std::path::Path, (user, password): (&str, &str)) -> TokenService {
        use base64::Engine as _;
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-keyout", "token.key", "-out", "token.crt"])
            .args(["-subj", "/CN=berth-test-tokens"])
            .current_dir(dir)
            .output()
            .expect("openssl missing: run scripts/setup.sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let minter = Minter {
            dir: dir.to_path_buf(),
            user: user.to_string(),
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                use std::io::{BufRead, Write};
                let mut reader = std::io::BufReader::new(&stream);
                let mut target = String::new();
                let mut authorized = false;
                let mut length = 0;
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    if target.is_empty() {
                        target = line.split(' ').nth(1).unwrap_or_default().to_string();
                    } else if let Some((name, value)) = line.split_once(':') {
                        if name.eq_ignore_ascii_case("authorization") {
                            authorized = value.trim() == expected;
                        } else if name.eq_ignore_ascii_case("content-length") {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                    line.clear();
                }
                // OAuth2's refresh grant: a form POSTed with the identity token.
                let mut body = vec![0; length];
                let _ = std::io::Read::read_exact(&mut reader, &mut body);
                let form = String::from_utf8_lossy(&body).into_owned();
                if form
                    .split('&')
                    .any(|p| p == format!("refresh_token={REFRESH_TOKEN}"))
                {
                    authorized = true;
                    target = format!("{target}?{form}");
                }
                let (status, body) = if authorized {
                    let token = minter.token(&target);
                    let body = serde_json::json!({ "token": token, "access_token": token });
                    ("200 OK", body.to_string())
                } else {
                    let refusal = r#"{"details":"incorrect username or password"}"#;
                    ("401 Unauthorized", refusal.to_string())
                };
                seen.lock().unwrap().push(target);
                let _ = write!(
                    &stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        TokenService { address, requests }
    }
}

/// Signs tokens with the service's key (`token.key` in `dir`, RS256 through openssl).
struct Minter {
    dir: PathBuf,
    user: String,
}

impl Minter {
    /// A token granting what `/token?scope=repository:NAME:ACTIONS` asks for (nothing
    /// without a scope: enough for `GET /v2/`).
    fn token(&self, target: &str) -> String {
        use base64::Engine as _;
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let query = target.split_once('?').map_or("", |(_, q)| q);
        let access: Vec<_> = query
            .split('&')
            .filter_map(|pair| pair.strip_prefix("scope="))
            .map(|scope| {
                scope
                    .replace("%3A", ":")
                    .replace("%2F", "/")
                    .replace("%2C", ",")
            })
            .filter_map(|scope| {
                let mut parts = scope.splitn(3, ':');
                let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                let actions: Vec<&str> = actions.split(',').collect();
                Some(serde_json::json!({"type": kind, "name": name, "actions": actions}))
            })
            .collect();
        let pem = std::fs::read_to_string(self.dir.join("token.crt")).unwrap();
        let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [der]});
        let claims = serde_json::json!({
            "iss": TOKEN_ISSUER, "sub": self.user, "aud": TOKEN_AUDIENCE, "exp": now + 600,
            "nbf": now - 60, "iat": now, "jti": format!("{now}"), "access": access,
        });
        let signed = format!(
            "{}.{}",
            url.encode(header.to_string()),
            url.encode(claims.to_string())
        );
        let input = self.dir.join("token.input");
        std::fs::write(&input, &signed).unwrap();
        let signature = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign", "token.key"])
            .arg(&input)
            .current_dir(&self.dir)
            .output()
            .unwrap();
        assert!(signature.status.success());
        format!("{signed}.{}", url.encode(signature.stdout))
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
