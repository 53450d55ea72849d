//! A private berth installation per test: its own config, state dir and run dir, a busybox image
//! built from Debian's busybox-static, and a runner for the real `berth` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use crate::bin::berth_exe;

/// A busybox root filesystem shared by every test in the process (read-only once built).
pub fn busybox_rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("berth-test-busybox-{}", std::process::id()));
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy("/bin/busybox", bin.join("busybox"))
            .expect("/bin/busybox missing: apt-get install busybox-static (scripts/setup.sh)");
        let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for applet in String::from_utf8(list.stdout).unwrap().lines() {
            let link = bin.join(applet);
            if !link.exists() {
                std::os::unix::fs::symlink("busybox", link).unwrap();
            }
        }
        for d in ["tmp", "etc", "proc", "sys", "dev", "data"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        dir
    })
}

/// The outcome of one `berth` invocation.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Panics with both streams unless berth exited 0.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "berth failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

/// A tmpfs the test mounts on `dir` (made if missing) with `options` (e.g. `ro,size=1m`),
/// unmounted when dropped, even when the test fails.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, options: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(mounted.success(), "mounting a tmpfs on {}", dir.display());
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    // Quietly: what the test exercised may have unmounted it already.
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg(&self.0)
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// `dir` made read-only in place (a read-only bind mount on itself) until this drops.
pub struct ReadOnly(PathBuf);

impl ReadOnly {
    pub fn bind(dir: &Path) -> ReadOnly {
        for args in [&["--bind"][..], &["-o", "remount,bind,ro"]] {
            let mounted = Command::new("mount")
                .args(args)
                .arg(dir)
                .arg(dir)
                .status()
                .unwrap();
            assert!(mounted.success(), "mount {args:?} {}", dir.display());
        }
        ReadOnly(dir.to_path_buf())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Writes a configuration with these state and run dirs and one native backend to `path`
/// (containers get loopback only, so the config needs no network slot); its path, for
/// `--config`.
pub fn native_config(path: &Path, state: &Path, run: &Path) -> String {
    std::fs::write(
        path,
        format!(
            "[host]\nstate-dir = \"{}\"\nrun-dir = \"{}\"\n\n[backends.native]\ntype = \"native\"\n\n[network]\ndefault = \"none\"\n",
            state.display(),
            run.display()
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// `berth ARGS...` with no installation of the test's own (the caller passes `--config`).
pub fn run_berth(args: &[&str]) -> Run {
    let output = Command::new(berth_exe())
        .args(args)
        .env_remove("BERTH_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("running berth");
    Run::from(output)
}

/// Addresses and a bridge name no other test holds: concurrent test processes each lock a
/// different slot (a flock, released when the slot is dropped or its process dies), so their
/// default networks never share a bridge or a subnet.
pub struct NetworkSlot {
    pub index: u8,
    _lock: std::fs::File,
}

impl NetworkSlot {
    pub fn take() -> NetworkSlot {
        use std::os::fd::AsRawFd;
        let dir = std::env::temp_dir().join("berth-test-networks");
        std::fs::create_dir_all(&dir).unwrap();
        for index in 0..=250u8 {
            let file = std::fs::File::create(dir.join(format!("{index}.lock"))).unwrap();
            // SAFETY: flock on an fd this function owns.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return NetworkSlot { index, _lock: file };
            }
        }
        panic!("every test network slot is taken");
    }

    /// The default network's bridge.
    pub fn bridge(&self) -> String {
        format!("berth-t{}", self.index)
    }

    /// The slot's `n`th /24 (0 is the default network's; tests create networks on 1..).
    pub fn subnet(&self, n: u8) -> String {
        format!("10.{}.{}.0/24", 200 + n, self.index)
    }

    /// The `[network]` section that puts the default network in this slot.
    pub fn config(&self) -> String {
        format!(
            "[network]\nbridge = \"{}\"\nsubnet = \"{}\"\n",
            self.bridge(),
            self.subnet(0)
        )
    }
}

impl Drop for NetworkSlot {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "delete", &self.bridge()])
            .stderr(Stdio::null())
            .status();
    }
}

pub struct BerthEnv {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub network: NetworkSlot,
}

impl BerthEnv {
    /// A native-backend installation; `extra` is appended to the config (plugins, backends).
    pub fn new(extra: &str) -> BerthEnv {
        let dir = tempfile::Builder::new()
            .prefix("berth-e2e-")
            .tempdir()
            .unwrap();
        let config = dir.path().join("berth.toml");
        let network = NetworkSlot::take();
        // Last: `extra` may continue the native backend's table.
        let network_section = if extra.contains("[network]") {
            String::new()
        } else {
            network.config()
        };
        let text = format!(
            "[host]\nstate-dir = \"{state}\"\nrun-dir = \"{run}\"\n\n[backends.native]\ntype = \"native\"\n\n{extra}\n{network_section}",
            state = dir.path().join("state").display(),
            run = dir.path().join("run").display(),
        );
        std::fs::write(&config, text).unwrap();
        BerthEnv {
            dir,
            config,
            network,
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(berth_exe());
        command
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("BERTH_CONFIG")
            // Registry logins of this installation's own, never the developer's.
            .env("DOCKER_CONFIG", self.docker_config_dir())
            .stdin(Stdio::null());
        command
    }

    /// Where `berth login` keeps this installation's credentials (docker's `config.json`).
    pub fn docker_config_dir(&self) -> PathBuf {
        self.dir.path().join("docker-config")
    }

    pub fn berth(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("running berth"))
    }

    /// `stats --json` of `container`, asked again until its CPU time passes `cpu_ns` (stats are
    /// a snapshot, and the work that shows in them takes a moment); panics if it never does.
    #[track_caller]
    pub fn stats_after_work(&self, container: &str, cpu_ns: u64) -> serde_json::Value {
        for _ in 0..100 {
            let figures = self.berth(&["stats", "--json", container]).ok().json()[0].clone();
            if figures["cpu_total_ns"].as_u64().unwrap() > cpu_ns {
                return figures;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("{container} never reported {cpu_ns} ns of CPU time");
    }

    /// Imports the shared busybox rootfs as `busybox:local`.
    pub fn with_busybox(self) -> BerthEnv {
        let rootfs = busybox_rootfs().display().to_string();
        self.berth(&["image", "import", "--rootfs", &rootfs, "busybox:local"])
            .ok();
        self
    }
}

impl Drop for BerthEnv {
    /// Leaves no pods, containers (and so no mounts or cgroups) and no networks behind, even
    /// when a test fails.
    fn drop(&mut self) {
        // Pods first: their infra processes and namespace files, and their apps.
        if let Ok(out) = self.command(&["pod", "ls", "--json"]).output()
            && let Ok(pods) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
        {
            for pod in pods.as_array().into_iter().flatten() {
                if let Some(id) = pod["id"].as_str() {
                    let _ = self.command(&["pod", "rm", "-f", id]).output();
                }
            }
        }
        if let Ok(out) = self.command(&["ps", "-a", "-q"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = self.command(&["rm", "-f", id]).output();
            }
        }
        // Networks, the default one too, so their bridges, routes and rules go even when the
        // test failed.
        if let Ok(out) = self.command(&["network", "ls", "--json"]).output()
            && let Ok(networks) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
        {
            for network in networks.as_array().into_iter().flatten() {
                if let Some(name) = network["name"].as_str() {
                    let _ = self.command(&["network", "rm", name]).output();
                }
            }
        }
    }
}

/// A package source directory under `dir` whose `bin/hello` prints "hello from a package".
pub fn package_source(dir: &Path) -> String {
    let src = dir.join("hello-src");
    std::fs::create_dir_all(src.join("bin")).unwrap();
    std::fs::write(
        src.join("bin/hello"),
        "#!/bin/sh\necho hello from a package\n",
    )
    .unwrap();
    std::fs::set_permissions(
        src.join("bin/hello"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    src.display().to_string()
}

/// `berth ARGS` with `BERTH_CRASH_AT=point`; asserts it died by SIGKILL there.
#[track_caller]
pub fn killed_at(env: &BerthEnv, point: &str, args: &[&str]) {
    let out = env
        .command(args)
        .env("BERTH_CRASH_AT", point)
        .output()
        .expect("running berth");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGKILL),
        "berth {args:?} did not reach fault point {point}: {out:?}"
    );
}

/// Whether process `pid` has ended: gone, or a zombie its parent has yet to reap.
pub fn ended(pid: u64) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.is_empty()
        || stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'))
}
