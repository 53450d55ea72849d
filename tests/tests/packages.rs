//! Packages (.ipk) through the `berth` binary: built from a directory, installed from a file or
//! a repository directory, mounted read-only into a real container; corrupt and missing ones.

use std::path::Path;

use berth_tests::env::{BerthEnv, package_source as source};

const IMAGE: &str = "busybox:local";

#[test]
fn a_package_is_built_installed_and_mounted_read_only() {
    let env = BerthEnv::new("").with_busybox();
    let src = source(env.dir.path());
    let file = env.dir.path().join("hello.ipk").display().to_string();
    env.berth(&[
        "pkg",
        "build",
        &src,
        "--name",
        "hello",
        "--version",
        "1.0.0",
        "-o",
        &file,
    ])
    .ok();
    let header = env.berth(&["pkg", "inspect", &file]).ok().json();
    assert_eq!(header["name"], "hello");
    assert_eq!(header["compression"], "xz");

    let installed = env.berth(&["pkg", "install", &file, "--json"]).ok().json();
    let id = installed["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("hello_1.0.0_linux_"), "{installed}");
    assert!(
        env.state_dir()
            .join("var/ipk_install/hello")
            .join(&id)
            .join("bin/hello")
            .is_file()
    );
    assert!(
        env.state_dir()
            .join("var/ipk/hello")
            .join(format!("{id}.ipk"))
            .is_file()
    );
    // Idempotent.
    assert_eq!(
        env.berth(&["pkg", "install", &file, "--json"]).ok().json(),
        installed
    );

    let run = env.berth(&[
        "run",
        "--rm",
        "--pkg",
        "hello@1.0.0",
        IMAGE,
        "sh",
        "-c",
        "/usr/berth/hello/bin/hello; touch /usr/berth/hello/x || echo read-only",
    ]);
    assert_eq!(run.ok().stdout, "hello from a package\nread-only\n");

    let listed = env.berth(&["pkg", "ls", "--json"]).ok().json();
    assert_eq!(listed[0]["version"], "1.0.0");
    env.berth(&["pkg", "rm", "hello@1.0.0"]).ok();
    assert_eq!(
        env.berth(&["pkg", "ls", "--json"]).ok().json(),
        serde_json::json!([])
    );
}

#[test]
fn run_installs_from_the_repository_and_refuses_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    let env = BerthEnv::new(&format!(
        "[packages]\nrepository = \"{}\"\nmount-prefix = \"/opt/pkgs\"\n",
        repo.display()
    ))
    .with_busybox();
    let src = source(env.dir.path());
    // Without -o, `pkg build` writes <id>.ipk into the current directory: the repository.
    let build = env
        .command(&[
            "pkg",
            "build",
            &src,
            "--name",
            "hello",
            "--version",
            "2.0.0-rc.1",
            "--compression",
            "gzip",
            "--json",
        ])
        .current_dir(&repo)
        .output()
        .unwrap();
    assert!(build.status.success(), "{build:?}");
    let built: serde_json::Value = serde_json::from_slice(&build.stdout).unwrap();
    let id = format!(
        "{}_{}_{}_{}",
        built["name"].as_str().unwrap(),
        built["version"].as_str().unwrap(),
        built["os"].as_str().unwrap(),
        built["arch"].as_str().unwrap()
    );
    assert!(repo.join(format!("{id}.ipk")).is_file());

    let run = env.berth(&[
        "run",
        "--rm",
        "--pkg",
        "hello@2.0.0-rc.1",
        IMAGE,
        "/opt/pkgs/hello/bin/hello",
    ]);
    assert_eq!(run.ok().stdout, "hello from a package\n");

    let missing = env.berth(&["run", "--rm", "--pkg", "absent@1.0.0", IMAGE, "true"]);
    assert_eq!(missing.code, 66, "{missing:?}");
    assert!(missing.stderr.contains("absent"), "{missing:?}");
    assert_eq!(env.berth(&["ps", "-a", "-q"]).ok().stdout, "");

    let bad = env.berth(&["run", "--rm", "--pkg", "hello@v2", IMAGE, "true"]);
    assert_eq!(bad.code, 64, "{bad:?}");
}

#[test]
fn corrupt_packages_and_bad_versions_are_refused_with_nothing_left() {
    let env = BerthEnv::new("");
    let src = source(env.dir.path());
    let bad_version = env.berth(&["pkg", "build", &src, "--name", "x", "--version", "01.0.0"]);
    assert_eq!(bad_version.code, 64, "{bad_version:?}");
    assert!(
        bad_version.stderr.contains("semantic version"),
        "{bad_version:?}"
    );

    let file = env.dir.path().join("x.ipk");
    env.berth(&[
        "pkg",
        "build",
        &src,
        "--name",
        "x",
        "--version",
        "1.0.0",
        "--compression",
        "none",
        "-o",
        &file.display().to_string(),
    ])
    .ok();
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let install = env.berth(&["pkg", "install", &file.display().to_string()]);
    assert_eq!(install.code, 65, "{install:?}");
    assert!(install.stderr.contains("sha256"), "{install:?}");
    assert!(!env.state_dir().join("var").exists(), "nothing left behind");
}

/// Python's `http.server` over `dir` (over TLS when given a certificate and key): a real HTTP
/// server, stopped on drop.
struct HttpServer {
    child: std::process::Child,
    url: String,
}

/// Serves the current directory on port argv[1], with TLS from argv[2] and argv[3] if given.
const SERVE: &str = "import http.server, ssl, sys
server = http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), http.server.SimpleHTTPRequestHandler)
if len(sys.argv) > 2:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(sys.argv[2], sys.argv[3])
    server.socket = tls.wrap_socket(server.socket, server_side=True)
server.serve_forever()";

impl HttpServer {
    fn serve(dir: &Path, tls: Option<(&Path, &Path)>) -> HttpServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = std::process::Command::new("python3");
        command.args(["-c", SERVE, &port.to_string()]);
        if let Some((cert, key)) = tls {
            command.arg(cert).arg(key);
        }
        let child = command
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs (scripts/setup.sh installs it)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "http.server never listened"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        HttpServer {
            child,
            url: format!("{scheme}://127.0.0.1:{port}"),
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_http_repository_is_downloaded_in_checked_chunks() {
    let served = tempfile::tempdir().unwrap();
    let server = HttpServer::serve(served.path(), None);
    let env = BerthEnv::new(&format!("[packages]\nrepository = \"{}/\"\n", server.url));
    // 2.5 MiB that does not compress away, so the download has three chunks.
    let src = env.dir.path().join("big");
    std::fs::create_dir(&src).unwrap();
    let noise: Vec<u8> = (0u32..(5 << 19))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(src.join("blob"), &noise).unwrap();
    std::fs::create_dir(served.path().join("big")).unwrap();
    let out = served.path().join("big/big.ipk");
    let header = env
        .berth(&[
            "pkg",
            "build",
            &src.display().to_string(),
            "--name",
            "big",
            "--version",
            "1.0.0",
            "--compression",
            "none",
            "--chunk-sums",
            "--json",
            "-o",
            &out.display().to_string(),
        ])
        .ok()
        .json();
    let id = format!(
        "big_1.0.0_{}_{}",
        header["os"].as_str().unwrap(),
        header["arch"].as_str().unwrap()
    );
    let file = served.path().join(format!("big/{id}.ipk"));
    let sums = served.path().join(format!("big/{id}.ipk.crc32"));
    std::fs::rename(&out, &file).unwrap();
    std::fs::rename(served.path().join("big/big.ipk.crc32"), &sums).unwrap();
    assert_eq!(std::fs::read_to_string(&sums).unwrap().lines().count(), 3);
    let good = std::fs::read(&file).unwrap();
    let nothing_left = |env: &BerthEnv| {
        let var = env.state_dir().join("var");
        let left: Vec<_> = walk(&var).into_iter().filter(|p| p.is_file()).collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    };

    // One flipped byte in the second chunk: caught by that chunk's CRC32.
    let mut damaged = good.clone();
    damaged[(1 << 20) + 7] ^= 0x40;
    std::fs::write(&file, &damaged).unwrap();
    let install = env.berth(&["pkg", "install", "big@1.0.0"]);
    assert_eq!(install.code, 65, "{install:?}");
    assert!(install.stderr.contains("chunk 1 has CRC32"), "{install:?}");
    nothing_left(&env);

    // Without published sums the data block's sha256 still catches it.
    std::fs::remove_file(&sums).unwrap();
    let install = env.berth(&["pkg", "install", "big@1.0.0"]);
    assert_eq!(install.code, 65, "{install:?}");
    assert!(install.stderr.contains("sha256"), "{install:?}");
    nothing_left(&env);

    std::fs::write(&file, &good).unwrap();
    std::fs::write(&sums, berth_packages::repository::chunk_sums(&good)).unwrap();
    let installed = env
        .berth(&["pkg", "install", "big@1.0.0", "--json"])
        .ok()
        .json();
    let path = Path::new(installed["path"].as_str().unwrap());
    assert_eq!(std::fs::read(path.join("blob")).unwrap(), noise);

    let missing = env.berth(&["pkg", "install", "absent@1.0.0"]);
    assert_eq!(missing.code, 66, "{missing:?}");
    assert!(missing.stderr.contains(&server.url), "{missing:?}");

    drop(server);
    let env = BerthEnv::new("[packages]\nrepository = \"http://127.0.0.1:9\"\n");
    let down = env.berth(&["pkg", "install", "big@1.0.0"]);
    assert_eq!(down.code, 69, "{down:?}");
    assert!(
        down.stderr
            .contains("package repository is unreachable at http://127.0.0.1:9/big/"),
        "{down:?}"
    );
    nothing_left(&env);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}

/// `openssl` run in `dir`, which must succeed.
fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

#[test]
fn an_https_repository_is_trusted_through_the_system_roots() {
    // A CA of the test's own and a certificate it signs for 127.0.0.1.
    let pki = tempfile::tempdir().unwrap();
    let p = pki.path();
    openssl(
        p,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=berth test CA",
        ],
    );
    openssl(
        p,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(p.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        p,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "1",
            "-extfile",
            "san.ext",
        ],
    );

    let served = tempfile::tempdir().unwrap();
    let server = HttpServer::serve(
        served.path(),
        Some((&p.join("leaf.pem"), &p.join("leaf.key"))),
    );
    let env = BerthEnv::new(&format!("[packages]\nrepository = \"{}\"\n", server.url));
    let src = source(env.dir.path());
    let built = env
        .command(&[
            "pkg",
            "build",
            &src,
            "--name",
            "hello",
            "--version",
            "1.0.0",
        ])
        .current_dir(served.path())
        .output()
        .unwrap();
    assert!(built.status.success(), "{built:?}");

    // Not trusted by the system roots: refused, and nothing is kept.
    let untrusted = env.berth(&["pkg", "install", "hello@1.0.0"]);
    assert_eq!(untrusted.code, 69, "{untrusted:?}");
    assert!(untrusted.stderr.contains(&server.url), "{untrusted:?}");
    assert!(!env.state_dir().join("var/ipk_install/hello").exists());

    // Trusted once the CA is among the roots (SSL_CERT_FILE, as OpenSSL reads it).
    let trusted = env
        .command(&["pkg", "install", "hello@1.0.0", "--json"])
        .env("SSL_CERT_FILE", p.join("ca.pem"))
        .output()
        .unwrap();
    assert!(trusted.status.success(), "{trusted:?}");
    let installed: serde_json::Value = serde_json::from_slice(&trusted.stdout).unwrap();
    let tool = Path::new(installed["path"].as_str().unwrap()).join("bin/hello");
    assert!(tool.is_file());
}
