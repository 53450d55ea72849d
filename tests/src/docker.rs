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

/// dockerd behind a unix socket of the test's own that drops the connection of every request
/// whose path contains `dropped`, and passes the others on (each on a connection of its own):
/// a daemon that answers its health probe and dies during the command, on demand. Stops
/// serving when dropped.
pub struct DroppingDocker {
    pub socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl DroppingDocker {
    pub fn start(dropped: &'static str) -> DroppingDocker {
        use std::io::{BufRead, BufReader, Write};
        use std::os::unix::net::{UnixListener, UnixStream};
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(client.try_clone().unwrap());
                    let mut head = String::new();
                    let mut line = String::new();
                    while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                        // One request per connection, so each one passes this check.
                        if !line.to_ascii_lowercase().starts_with("connection:") {
                            head.push_str(&line);
                        }
                        line.clear();
                    }
                    if head.lines().next().unwrap_or_default().contains(dropped) {
                        return; // dropped, unanswered
                    }
                    let Ok(mut daemon) = UnixStream::connect("/var/run/docker.sock") else {
                        return;
                    };
                    head.push_str("Connection: close\r\n\r\n");
                    if daemon.write_all(head.as_bytes()).is_err() {
                        return;
                    }
                    let mut to_daemon = daemon.try_clone().unwrap();
                    // The request's body (what the reader buffered, then the rest), and the
                    // answer back, until the daemon closes.
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut reader, &mut to_daemon);
                    });
                    let mut client = client;
                    let _ = std::io::copy(&mut daemon, &mut client);
                    let _ = client.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        DroppingDocker { socket, _dir: dir }
    }
}
