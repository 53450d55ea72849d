//! Named volumes: a btrfs quota enforced inside a real container (on a loop-mounted btrfs made
//! by the test), an XFS project quota through the real `xfs_quota` where the kernel has XFS
//! quota support, plain directories under the `none` driver, and the errors around them.

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_tests::env::BerthEnv;

const IMAGE: &str = "busybox:local";

/// A loop-mounted btrfs with quotas enabled, unmounted when dropped.
struct Btrfs {
    _dir: tempfile::TempDir,
    mount: PathBuf,
}

fn sh(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Btrfs {
    fn new() -> Btrfs {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("btrfs.img");
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).unwrap();
        sh("truncate", &["-s", "300M", &image.display().to_string()]);
        sh("mkfs.btrfs", &["-q", &image.display().to_string()]);
        sh(
            "mount",
            &[
                "-o",
                "loop",
                &image.display().to_string(),
                &mount.display().to_string(),
            ],
        );
        let fs = Btrfs { _dir: dir, mount };
        sh(
            "btrfs",
            &["quota", "enable", &fs.mount.display().to_string()],
        );
        fs
    }
}

impl Drop for Btrfs {
    fn drop(&mut self) {
        // Lazy: a container's mount namespace may still be letting go of it.
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

/// A loop-mounted XFS with project quotas; `None` when this kernel has no XFS quota support.
struct Xfs {
    dir: tempfile::TempDir,
    mount: PathBuf,
}

impl Xfs {
    fn new() -> Option<Xfs> {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("xfs.img").display().to_string();
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).unwrap();
        sh("truncate", &["-s", "400M", &image]);
        sh("mkfs.xfs", &["-q", &image]);
        let with_quota = Command::new("mount")
            .args(["-o", "loop,prjquota", &image])
            .arg(&mount)
            .output()
            .unwrap();
        if with_quota.status.success() {
            return Some(Xfs { dir, mount });
        }
        // XFS itself must mount, or the failure is the test's, not the kernel's.
        sh(
            "mount",
            &["-o", "loop", &image, &mount.display().to_string()],
        );
        sh("umount", &[&mount.display().to_string()]);
        None
    }
}

impl Drop for Xfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

fn quota(kind: &str, path: &Path) -> String {
    format!(
        "[quota]\ntype = \"{kind}\"\npath = \"{}\"\n",
        path.display()
    )
}

#[test]
fn a_btrfs_quota_stops_writes_inside_the_container() {
    let fs = Btrfs::new();
    let env = BerthEnv::new(&quota("btrfs", &fs.mount.join("volumes"))).with_busybox();
    env.berth(&["volume", "create", "data", "--size", "10M"])
        .ok();

    let write = env.berth(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        IMAGE,
        "dd",
        "if=/dev/zero",
        "of=/data/f",
        "bs=1M",
        "count=20",
    ]);
    assert_ne!(write.code, 0, "{write:?}");
    assert!(write.stderr.contains("Disk quota exceeded"), "{write:?}");
    // Room again once the big file is gone (and the removal committed): under the limit is fine.
    env.berth(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        IMAGE,
        "sh",
        "-c",
        "rm /data/f && sync && dd if=/dev/zero of=/data/small bs=1M count=9",
    ])
    .ok();

    let listed = env.berth(&["volume", "ls", "--json"]).ok().json();
    let data = &listed[0];
    assert_eq!(data["name"], "data");
    assert_eq!(data["driver"], "btrfs");
    assert_eq!(data["limit"], 10 << 20);
    let used = data["used"].as_u64().unwrap();
    assert!(used > 8 << 20 && used <= 10 << 20, "{listed}");

    // In use by a container: refused, and the data stays.
    env.berth(&[
        "create",
        "--name",
        "user",
        "-v",
        "data:/data",
        IMAGE,
        "true",
    ])
    .ok();
    let refused = env.berth(&["volume", "rm", "data"]);
    assert_eq!(refused.code, 73, "{refused:?}");
    assert!(refused.stderr.contains("user"), "{refused:?}");
    assert!(fs.mount.join("volumes/data/small").exists());

    env.berth(&["rm", "user"]).ok();
    env.berth(&["volume", "rm", "data"]).ok();
    assert!(!fs.mount.join("volumes/data").exists());
    assert_eq!(
        env.berth(&["volume", "ls", "--json"]).ok().json(),
        serde_json::json!([])
    );
}

#[test]
fn an_xfs_project_quota_stops_writes_where_the_kernel_supports_it() {
    let Some(fs) = Xfs::new() else {
        // This kernel ("quota support not available" in dmesg) cannot enforce XFS quotas; the
        // driver's exact xfs_quota argv is covered by berth-quota's unit tests instead.
        eprintln!("XFS mounts, but without project quota support: the real xfs_quota run needs it");
        return;
    };
    let config = format!(
        "{}projects-file = \"{}\"\n",
        quota("xfs", &fs.mount.join("volumes")),
        fs.dir.path().join("projects").display()
    );
    let env = BerthEnv::new(&config).with_busybox();
    // 100 MiB is the driver's floor.
    env.berth(&["volume", "create", "data", "--size", "100M"])
        .ok();
    let write = env.berth(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        IMAGE,
        "dd",
        "if=/dev/zero",
        "of=/data/f",
        "bs=1M",
        "count=150",
    ]);
    assert_ne!(write.code, 0, "{write:?}");
    assert!(
        write.stderr.contains("Disk quota exceeded") || write.stderr.contains("No space left"),
        "{write:?}"
    );
    let listed = env.berth(&["volume", "ls", "--json"]).ok().json();
    assert_eq!(listed[0]["driver"], "xfs");
    assert_eq!(listed[0]["limit"], 100 << 20);
    assert!(listed[0]["used"].as_u64().unwrap() > 90 << 20, "{listed}");
    let projects = std::fs::read_to_string(fs.dir.path().join("projects")).unwrap();
    assert!(projects.contains("/volumes/data"), "{projects}");
    env.berth(&["volume", "rm", "data"]).ok();
    assert!(!fs.mount.join("volumes/data").exists());
}

#[test]
fn plain_volumes_hold_data_and_refuse_limits() {
    let env = BerthEnv::new("").with_busybox();
    let created = env
        .berth(&["volume", "create", "cache", "--json"])
        .ok()
        .json();
    assert_eq!(created["driver"], "none");
    env.berth(&[
        "run",
        "--rm",
        "-v",
        "cache:/cache",
        IMAGE,
        "sh",
        "-c",
        "echo kept > /cache/note",
    ])
    .ok();
    let path = PathBuf::from(created["path"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(path.join("note")).unwrap(),
        "kept\n"
    );
    let read = env.berth(&["run", "--rm", "-v", "cache:/c:ro", IMAGE, "cat", "/c/note"]);
    assert_eq!(read.ok().stdout, "kept\n");
    assert_eq!(
        env.berth(&["volume", "ls", "--json"]).ok().json()[0]["used"],
        5
    );

    let sized = env.berth(&["volume", "create", "big", "--size", "10M"]);
    assert_eq!(sized.code, 78, "{sized:?}");
    assert!(sized.stderr.contains("btrfs"), "{sized:?}");

    let missing = env.berth(&["run", "--rm", "-v", "nope:/x", IMAGE, "true"]);
    assert_eq!(missing.code, 66, "{missing:?}");
    assert!(
        missing.stderr.contains("berth volume create nope"),
        "{missing:?}"
    );
    assert_eq!(env.berth(&["ps", "-a", "-q"]).ok().stdout, "");

    let bad = env.berth(&["volume", "create", "../escape"]);
    assert_eq!(bad.code, 64, "{bad:?}");
    let twice = env.berth(&["volume", "create", "cache"]);
    assert_eq!(twice.code, 73, "{twice:?}");
}
