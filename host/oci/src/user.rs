//! An image's `USER` as the ids a container's process runs with. `uid:gid` is taken as it is; a
//! name is looked up in the image's own `/etc/passwd` and `/etc/group`, as docker and
//! containerd's clients do, and a bare uid gets its primary group from `/etc/passwd` (0 when it
//! has no entry).
//!
//! Where those files are depends on the backend, so they are read through [`ImageFiles`]:
//! native reads its overlay lower dirs, containerd the container's rootfs snapshot. Both are
//! layer directories in overlayfs's format, which [`LayerDirs`] reads as the merged view would.

use std::fs;
use std::io::{ErrorKind, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use berth_core::{Error, Result};

/// The files of an image's root filesystem, as far as the user lookup needs them.
pub trait ImageFiles {
    /// The text of the regular file at `path` (relative to the root, e.g. `etc/passwd`);
    /// `None` when the image has no such file.
    fn read(&self, path: &str) -> Result<Option<String>>;
}

/// Overlayfs layer directories, top first (lower dirs, or an upper dir and its lower dirs),
/// read as the merged view: the topmost layer that has the path wins, a whiteout (a 0:0
/// character device) or a non-directory on the way hides it, and an opaque directory hides
/// what lies below it.
#[derive(Debug, Clone)]
pub struct LayerDirs(pub Vec<PathBuf>);

/// More than any real `/etc/passwd`; a bigger file is read this far.
const MAX_FILE: u64 = 4 << 20;

impl ImageFiles for LayerDirs {
    fn read(&self, path: &str) -> Result<Option<String>> {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let Some((last, dirs)) = parts.split_last() else {
            return Ok(None);
        };
        'layers: for layer in &self.0 {
            let mut at = layer.clone();
            let mut opaque = false;
            for dir in dirs {
                at.push(dir);
                match metadata(&at)? {
                    None if opaque => return Ok(None),
                    None => continue 'layers,
                    Some(meta) if meta.is_dir() => opaque |= is_opaque(&at),
                    // A whiteout or a file where a directory would be hides the path.
                    Some(_) => return Ok(None),
                }
            }
            at.push(last);
            match metadata(&at)? {
                None if opaque => return Ok(None),
                None => continue,
                Some(meta) if meta.is_file() => {
                    let mut bytes = Vec::new();
                    fs::File::open(&at)
                        .and_then(|f| f.take(MAX_FILE).read_to_end(&mut bytes))
                        .map_err(|e| Error::io(format!("reading {}", at.display()), e))?;
                    return Ok(Some(String::from_utf8_lossy(&bytes).into_owned()));
                }
                // A whiteout, a directory or a symlink: no file berth reads.
                Some(_) => return Ok(None),
            }
        }
        Ok(None)
    }
}

fn metadata(path: &Path) -> Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// Whether overlayfs treats directory `path` as opaque (root's or a user namespace's xattr).
fn is_opaque(path: &Path) -> bool {
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .into_iter()
        .any(|name| {
            let name = std::ffi::CString::new(name).expect("no NUL in xattr names");
            let mut value = [0u8; 1];
            // SAFETY: both strings are NUL-terminated and `value` is writable for its length.
            let n = unsafe {
                libc::lgetxattr(
                    c_path.as_ptr(),
                    name.as_ptr(),
                    value.as_mut_ptr().cast(),
                    value.len(),
                )
            };
            n == 1 && value[0] == b'y'
        })
}

/// `uid[:gid]` or `name[:group]` (mixed too) as ids; names come from `files`.
pub fn resolve_user(user: &str, files: &dyn ImageFiles) -> Result<(u32, u32)> {
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let numeric_uid = user_part.parse::<u32>().ok();
    let numeric_gid = group_part.and_then(|g| g.parse::<u32>().ok());
    if let (Some(uid), Some(gid)) = (numeric_uid, numeric_gid) {
        return Ok((uid, gid));
    }
    let not_found = |what: berth_core::Object, name: &str| {
        Error::not_found(what, name).with_hint(format!(
            "the image's USER {user:?} is not in its /etc/passwd or /etc/group; use numeric ids"
        ))
    };
    let passwd = files.read("etc/passwd")?.unwrap_or_default();
    let (uid, primary_gid) = match numeric_uid {
        Some(uid) => (
            uid,
            lookup(&passwd, |f| f[2] == user_part).and_then(|f| f[3].parse().ok()),
        ),
        None => {
            let fields = lookup(&passwd, |f| f[0] == user_part)
                .ok_or_else(|| not_found(berth_core::Object::User, user_part))?;
            let uid = fields[2]
                .parse()
                .map_err(|_| not_found(berth_core::Object::User, user_part))?;
            (uid, fields[3].parse().ok())
        }
    };
    let gid = match (group_part, numeric_gid) {
        (None, _) => primary_gid.unwrap_or(0),
        (Some(_), Some(gid)) => gid,
        (Some(group), None) => {
            let groups = files.read("etc/group")?.unwrap_or_default();
            lookup(&groups, |f| f[0] == group)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| not_found(berth_core::Object::Group, group))?
        }
    };
    Ok((uid, gid))
}

/// The first line of a passwd or group file whose fields match.
fn lookup(file: &str, matches: impl Fn(&[&str]) -> bool) -> Option<Vec<String>> {
    file.lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && matches(f))
        .map(|f| f.into_iter().map(String::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    const PASSWD: &str = "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/:/bin/sh\n";

    fn image_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        fs::write(dir.path().join("etc/passwd"), PASSWD).unwrap();
        fs::write(dir.path().join("etc/group"), "staff:x:50:\n").unwrap();
        dir
    }

    #[test]
    fn users_resolve_from_the_image() {
        let dir = image_dir();
        let layers = LayerDirs(vec![dir.path().to_path_buf()]);
        assert_eq!(resolve_user("app", &layers).unwrap(), (1000, 1001));
        assert_eq!(resolve_user("app:staff", &layers).unwrap(), (1000, 50));
        assert_eq!(resolve_user("app:7", &layers).unwrap(), (1000, 7));
        assert_eq!(resolve_user("1000", &layers).unwrap(), (1000, 1001));
        assert_eq!(resolve_user("42", &layers).unwrap(), (42, 0));
        assert_eq!(resolve_user("42:staff", &layers).unwrap(), (42, 50));
        let e = resolve_user("nobody", &layers).unwrap_err();
        assert_eq!(e.kind(), berth_core::ErrorKind::NotFound);
        assert!(e.to_string().contains("use numeric ids"), "{e}");
        assert!(resolve_user("app:wheel", &layers).is_err());
    }

    /// Records which files a lookup reads.
    struct Reads(RefCell<Vec<String>>);

    impl ImageFiles for Reads {
        fn read(&self, path: &str) -> Result<Option<String>> {
            self.0.borrow_mut().push(path.to_string());
            Ok(Some(PASSWD.into()))
        }
    }

    #[test]
    fn numeric_ids_read_nothing() {
        let reads = Reads(RefCell::new(Vec::new()));
        assert_eq!(resolve_user("42:7", &reads).unwrap(), (42, 7));
        assert!(reads.0.borrow().is_empty());
        assert_eq!(resolve_user("app", &reads).unwrap(), (1000, 1001));
        assert_eq!(*reads.0.borrow(), ["etc/passwd"]);
    }

    #[test]
    fn layers_read_as_the_merged_view() {
        let top = tempfile::tempdir().unwrap();
        let base = image_dir();
        let layers = LayerDirs(vec![top.path().to_path_buf(), base.path().to_path_buf()]);
        // Not in the top layer: the base's file shows through.
        assert_eq!(layers.read("etc/passwd").unwrap().as_deref(), Some(PASSWD));
        assert_eq!(layers.read("/etc/passwd").unwrap().as_deref(), Some(PASSWD));

        // The top layer's own file wins.
        fs::create_dir(top.path().join("etc")).unwrap();
        fs::write(top.path().join("etc/passwd"), "top:x:1:1::/:/bin/sh\n").unwrap();
        assert_eq!(resolve_user("top", &layers).unwrap(), (1, 1));
        assert!(resolve_user("app", &layers).is_err());
        // Its group file is missing, so the base's is read.
        assert_eq!(resolve_user("top:staff", &layers).unwrap(), (1, 50));

        // A whiteout hides the base's file.
        fs::remove_file(top.path().join("etc/passwd")).unwrap();
        let whiteout =
            std::ffi::CString::new(top.path().join("etc/passwd").as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path; mknod of a 0:0 character device is overlayfs's whiteout.
        assert_eq!(
            unsafe { libc::mknod(whiteout.as_ptr(), libc::S_IFCHR, 0) },
            0
        );
        assert_eq!(layers.read("etc/passwd").unwrap(), None);
        assert_eq!(
            layers.read("etc/group").unwrap().as_deref(),
            Some("staff:x:50:\n")
        );

        // A file where a directory would be hides everything under it.
        fs::remove_dir_all(top.path().join("etc")).unwrap();
        fs::write(top.path().join("etc"), "").unwrap();
        assert_eq!(layers.read("etc/group").unwrap(), None);
        assert_eq!(layers.read("etc").unwrap().as_deref(), Some(""));
        assert_eq!(LayerDirs(Vec::new()).read("etc/passwd").unwrap(), None);
    }

    #[test]
    fn an_opaque_directory_hides_the_layers_below() {
        let top = tempfile::tempdir().unwrap();
        let base = image_dir();
        let etc = top.path().join("etc");
        fs::create_dir(&etc).unwrap();
        let layers = LayerDirs(vec![top.path().to_path_buf(), base.path().to_path_buf()]);
        assert!(layers.read("etc/passwd").unwrap().is_some());
        let path = std::ffi::CString::new(etc.as_os_str().as_bytes()).unwrap();
        let name = std::ffi::CString::new("trusted.overlay.opaque").unwrap();
        // SAFETY: NUL-terminated strings and a one-byte value.
        let set =
            unsafe { libc::lsetxattr(path.as_ptr(), name.as_ptr(), b"y".as_ptr().cast(), 1, 0) };
        assert_eq!(set, 0, "setting trusted xattrs needs root");
        assert_eq!(layers.read("etc/passwd").unwrap(), None);
    }
}
