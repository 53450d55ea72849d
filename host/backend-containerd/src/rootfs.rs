//! A container's rootfs snapshot read from the host before the container runs, which is how
//! containerd's own clients (`ctr`, nerdctl: `oci.WithUser`) turn an image's named `USER` into
//! ids from the image's `/etc/passwd` and `/etc/group`.
//!
//! The snapshot's mounts say where its files are. The overlay snapshotter's (`upperdir`, then
//! `lowerdir` top first) and a bind mount's source are plain directories on the host and are
//! read directly, as overlayfs would merge them; any other snapshotter's mounts are mounted
//! read-only on a scratch directory for the read and unmounted at once.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use berth_core::{Error, Result};
use berth_oci::{ImageFiles, LayerDirs};
use containerd_client::types::Mount;

/// The files of a prepared snapshot, by its mounts.
pub struct SnapshotFiles {
    mounts: Vec<Mount>,
    /// Where other mount types are mounted for a read.
    scratch: PathBuf,
}

impl SnapshotFiles {
    pub fn new(mounts: Vec<Mount>, scratch: PathBuf) -> SnapshotFiles {
        SnapshotFiles { mounts, scratch }
    }
}

impl ImageFiles for SnapshotFiles {
    fn read(&self, path: &str) -> Result<Option<String>> {
        match layer_dirs(&self.mounts) {
            Some(dirs) => LayerDirs(dirs).read(path),
            None => read_mounted(&self.mounts, &self.scratch, path),
        }
    }
}

/// The directories one overlay or bind mount stacks, top first; `None` for anything else.
fn layer_dirs(mounts: &[Mount]) -> Option<Vec<PathBuf>> {
    let [mount] = mounts else {
        return None;
    };
    match mount.r#type.as_str() {
        "overlay" => {
            let mut upper = Vec::new();
            let mut lower = Vec::new();
            for option in &mount.options {
                if let Some(dir) = option.strip_prefix("upperdir=") {
                    upper.push(PathBuf::from(dir));
                } else if let Some(dirs) = option.strip_prefix("lowerdir=") {
                    lower.extend(dirs.split(':').map(PathBuf::from));
                }
            }
            upper.extend(lower);
            (!upper.is_empty()).then_some(upper)
        }
        "bind" | "rbind" => Some(vec![PathBuf::from(&mount.source)]),
        _ => None,
    }
}

/// Mounts `mounts` read-only in order on a fresh directory under `scratch`, reads `path`
/// there, and unmounts again.
fn read_mounted(mounts: &[Mount], scratch: &Path, path: &str) -> Result<Option<String>> {
    berth_core::store::create_dir_all(scratch)?;
    let target = scratch.join(format!("rootfs-{}-{}", std::process::id(), crate::nanos()));
    std::fs::create_dir(&target)
        .map_err(|e| Error::io(format!("creating {}", target.display()), e))?;
    let mut mounted = Mounted {
        target: &target,
        count: 0,
    };
    for mount in mounts {
        mount_read_only(mount, &target)?;
        mounted.count += 1;
    }
    let read = LayerDirs(vec![target.clone()]).read(path);
    let unmounted = mounted.unmount();
    read.and_then(|text| unmounted.map(|()| text))
}

/// Mounts stacked on `target`, unmounted when dropped if not before.
struct Mounted<'a> {
    target: &'a Path,
    count: usize,
}

impl Mounted<'_> {
    /// Unmounts everything and removes the (then empty) directory; never recursively, so a
    /// mount that would not go cannot lose a file.
    fn unmount(mut self) -> Result<()> {
        let target = c_path(self.target)?;
        while self.count > 0 {
            // SAFETY: `target` is a NUL-terminated path.
            if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
                return Err(Error::io(
                    format!("unmounting {}", self.target.display()),
                    std::io::Error::last_os_error(),
                ));
            }
            self.count -= 1;
        }
        std::fs::remove_dir(self.target)
            .map_err(|e| Error::io(format!("removing {}", self.target.display()), e))
    }
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        if let Ok(target) = c_path(self.target) {
            for _ in 0..self.count {
                // SAFETY: `target` is a NUL-terminated path.
                unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
            }
        }
        let _ = std::fs::remove_dir(self.target);
    }
}

/// One of containerd's mounts, read-only whatever its options say: fstab-style flags become
/// mount flags, the rest is the filesystem's data.
fn mount_read_only(mount: &Mount, target: &Path) -> Result<()> {
    let mut flags = libc::MS_RDONLY;
    let mut data = Vec::new();
    for option in &mount.options {
        match option.as_str() {
            "ro" | "rw" => {}
            "bind" => flags |= libc::MS_BIND,
            "rbind" => flags |= libc::MS_BIND | libc::MS_REC,
            "nosuid" => flags |= libc::MS_NOSUID,
            "nodev" => flags |= libc::MS_NODEV,
            "noexec" => flags |= libc::MS_NOEXEC,
            "noatime" => flags |= libc::MS_NOATIME,
            other => data.push(other),
        }
    }
    let invalid = |what: &str| {
        Error::invalid(
            format!("{} mount of the rootfs snapshot", mount.r#type),
            format!("its {what} holds a NUL byte"),
        )
    };
    let source = CString::new(mount.source.as_str()).map_err(|_| invalid("source"))?;
    let kind = CString::new(mount.r#type.as_str()).map_err(|_| invalid("type"))?;
    let data = CString::new(data.join(",")).map_err(|_| invalid("options"))?;
    let c_target = c_path(target)?;
    // SAFETY: every pointer is a NUL-terminated string that outlives the call.
    let done = unsafe {
        libc::mount(
            source.as_ptr(),
            c_target.as_ptr(),
            kind.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    if done != 0 {
        return Err(Error::io(
            format!(
                "mounting the rootfs snapshot ({} {}) on {} to read the image's users",
                mount.r#type,
                mount.source,
                target.display()
            ),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn c_path(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::invalid(format!("path {}", path.display()), "it holds a NUL byte"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(kind: &str, source: &str, options: &[&str]) -> Mount {
        Mount {
            r#type: kind.into(),
            source: source.into(),
            target: String::new(),
            options: options.iter().map(|o| o.to_string()).collect(),
        }
    }

    #[test]
    fn overlay_and_bind_mounts_are_read_as_their_directories() {
        let overlay = mount(
            "overlay",
            "overlay",
            &[
                "index=off",
                "workdir=/s/3/work",
                "upperdir=/s/3/fs",
                "lowerdir=/s/2/fs:/s/1/fs",
            ],
        );
        assert_eq!(
            layer_dirs(std::slice::from_ref(&overlay)).unwrap(),
            ["/s/3/fs", "/s/2/fs", "/s/1/fs"].map(PathBuf::from)
        );
        // A view has lower dirs only.
        let view = mount("overlay", "overlay", &["lowerdir=/s/2/fs:/s/1/fs"]);
        assert_eq!(layer_dirs(&[view]).unwrap().len(), 2);
        let bind = mount("bind", "/s/1/fs", &["ro", "rbind"]);
        assert_eq!(layer_dirs(&[bind]).unwrap(), [PathBuf::from("/s/1/fs")]);
        assert!(layer_dirs(&[mount("btrfs", "/dev/x", &["subvolid=5"])]).is_none());
        assert!(layer_dirs(&[overlay.clone(), overlay]).is_none());
        assert!(layer_dirs(&[]).is_none());
    }

    #[test]
    fn other_mounts_are_mounted_read_only_for_the_read_and_unmounted() {
        let image = tempfile::tempdir().unwrap();
        std::fs::create_dir(image.path().join("etc")).unwrap();
        std::fs::write(
            image.path().join("etc/passwd"),
            "nobody:x:65534:65534::/:/bin/false\n",
        )
        .unwrap();
        let scratch = tempfile::tempdir().unwrap();
        // Two stacked mounts, as only this path would see them: a bind, then the same again.
        let source = image.path().display().to_string();
        let mounts = vec![
            mount("none", &source, &["rbind"]),
            mount("none", &source, &["bind"]),
        ];
        let files = SnapshotFiles::new(mounts, scratch.path().to_path_buf());
        assert_eq!(
            berth_oci::user::resolve_user("nobody", &files).unwrap(),
            (65534, 65534)
        );
        assert_eq!(files.read("etc/group").unwrap(), None);
        // Nothing stays mounted, and the scratch directory is empty again.
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mountinfo.contains(&scratch.path().display().to_string()),
            "{mountinfo}"
        );
        assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);

        // A mount that fails names what it tried, and leaves nothing behind.
        let bad = SnapshotFiles::new(
            vec![mount("no-such-fs", "/nowhere", &[])],
            scratch.path().to_path_buf(),
        );
        let e = bad.read("etc/passwd").unwrap_err();
        assert!(e.to_string().contains("no-such-fs /nowhere"), "{e}");
        assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
    }
}
