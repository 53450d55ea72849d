//! Unpacking a package's tar into its install directory through a capability (`cap-std`):
//! nothing can be created outside it, whatever the archive says. Regular files, directories and
//! symlinks only; each refusal names the entry.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use berth_core::{Error, Result};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, Permissions, PermissionsExt};

fn refused(archive: &Path, entry: &Path, why: &str) -> Error {
    Error::Corrupt {
        what: "package".into(),
        path: archive.to_owned(),
        message: format!("entry {} {why}", entry.display()),
        hint: "the package is malformed or hostile: do not install it".into(),
    }
}

/// `path` without `.` components; `None` if it is absolute or climbs with `..`.
fn inside(path: &Path) -> Option<PathBuf> {
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(clean)
}

/// Whether a relative symlink at `link` pointing to `target` stays inside the root.
fn target_inside(link: &Path, target: &Path) -> bool {
    let mut depth: usize = link.components().count().saturating_sub(1);
    for component in target.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir if depth > 0 => depth -= 1,
            _ => return false,
        }
    }
    true
}

/// Unpacks `tar` (from `archive`, for messages) into the existing empty directory `dest`.
pub fn unpack(archive: &Path, tar: &[u8], dest: &Path) -> Result<()> {
    let root = Dir::open_ambient_dir(dest, ambient_authority())
        .map_err(|e| Error::io(format!("opening {}", dest.display()), e))?;
    let mut entries = tar::Archive::new(tar);
    let io = |what: String| move |e| Error::io(what, e);
    for entry in entries
        .entries()
        .map_err(|e| Error::io(format!("reading {}", archive.display()), e))?
    {
        let mut entry =
            entry.map_err(|e| Error::io(format!("reading {}", archive.display()), e))?;
        let raw = entry
            .path()
            .map_err(|e| Error::io(format!("reading {}", archive.display()), e))?
            .into_owned();
        let Some(path) = inside(&raw) else {
            return Err(refused(
                archive,
                &raw,
                "would land outside the install directory",
            ));
        };
        if path.as_os_str().is_empty() {
            continue;
        }
        let kind = entry.header().entry_type();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            root.create_dir_all(parent).map_err(|_| {
                refused(archive, &raw, "has a parent that is not a plain directory")
            })?;
        }
        let mode = entry.header().mode().unwrap_or(0o644) & 0o755;
        match kind {
            tar::EntryType::Directory => {
                root.create_dir_all(&path)
                    .map_err(io(format!("creating {}", path.display())))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut file = root.create(&path).map_err(|_| {
                    refused(
                        archive,
                        &raw,
                        "cannot be created inside the install directory",
                    )
                })?;
                let mut data = Vec::new();
                entry
                    .read_to_end(&mut data)
                    .map_err(io(format!("reading {}", path.display())))?;
                std::io::Write::write_all(&mut file, &data)
                    .map_err(io(format!("writing {}", path.display())))?;
                root.set_permissions(&path, Permissions::from_mode(mode))
                    .map_err(io(format!("setting the mode of {}", path.display())))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .ok()
                    .flatten()
                    .ok_or_else(|| refused(archive, &raw, "is a symlink without a target"))?
                    .into_owned();
                if target.is_absolute() {
                    return Err(refused(
                        archive,
                        &raw,
                        &format!("is a symlink to the absolute path {}", target.display()),
                    ));
                }
                if !target_inside(&path, &target) {
                    return Err(refused(
                        archive,
                        &raw,
                        &format!(
                            "is a symlink to {}, outside the install directory",
                            target.display()
                        ),
                    ));
                }
                root.symlink(&target, &path).map_err(|_| {
                    refused(
                        archive,
                        &raw,
                        "cannot be linked inside the install directory",
                    )
                })?;
            }
            tar::EntryType::Link => return Err(refused(archive, &raw, "is a hard link")),
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(refused(archive, &raw, "is a device node"));
            }
            other => {
                return Err(refused(
                    archive,
                    &raw,
                    &format!("has unsupported type {other:?}"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o755);
        h
    }

    fn raw_entry(
        b: &mut tar::Builder<Vec<u8>>,
        kind: tar::EntryType,
        path: &str,
        link: Option<&str>,
    ) {
        let mut h = header(kind, 0);
        // set_path refuses '..' and absolute paths: write the name bytes directly, as an attacker would.
        let name = &mut h.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        if let Some(link) = link {
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_cksum();
        b.append(&h, std::io::empty()).unwrap();
    }

    fn unpack_err(tar: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("root");
        std::fs::create_dir(&dest).unwrap();
        let e = unpack(Path::new("evil.ipk"), tar, &dest).unwrap_err();
        assert_eq!(e.kind(), berth_core::ErrorKind::Corrupt, "{e}");
        assert!(!dir.path().join("escaped").exists());
        e.to_string()
    }

    #[test]
    fn files_dirs_and_inner_symlinks_unpack() {
        let tar = tar_with(|b| {
            let mut h = header(tar::EntryType::Regular, 2);
            h.set_path("bin/tool").unwrap();
            h.set_cksum();
            b.append(&h, &b"hi"[..]).unwrap();
            raw_entry(b, tar::EntryType::Symlink, "lib/tool", Some("../bin/tool"));
            raw_entry(b, tar::EntryType::Directory, "share/", None);
        });
        let dir = tempfile::tempdir().unwrap();
        unpack(Path::new("ok.ipk"), &tar, dir.path()).unwrap();
        assert_eq!(std::fs::read(dir.path().join("lib/tool")).unwrap(), b"hi");
        assert!(dir.path().join("share").is_dir());
    }

    #[test]
    fn escapes_links_and_devices_are_refused_by_name() {
        let cases: [(tar::EntryType, &str, Option<&str>, &str); 6] = [
            (tar::EntryType::Regular, "../escaped", None, "../escaped"),
            (tar::EntryType::Regular, "/escaped", None, "/escaped"),
            (
                tar::EntryType::Symlink,
                "up",
                Some("../../escaped"),
                "outside",
            ),
            (
                tar::EntryType::Symlink,
                "abs",
                Some("/etc/passwd"),
                "absolute path /etc/passwd",
            ),
            (
                tar::EntryType::Link,
                "hard",
                Some("etc/passwd"),
                "hard link",
            ),
            (tar::EntryType::Char, "null", None, "device node"),
        ];
        for (kind, path, link, said) in cases {
            let message = unpack_err(&tar_with(|b| raw_entry(b, kind, path, link)));
            assert!(message.contains(path.trim_start_matches('/')), "{message}");
            assert!(message.contains(said), "{message}");
        }
    }

    #[test]
    fn an_entry_climbing_through_an_earlier_symlink_is_refused() {
        let tar = tar_with(|b| {
            raw_entry(b, tar::EntryType::Symlink, "a/d", Some(".."));
            raw_entry(b, tar::EntryType::Regular, "a/d/../escaped", None);
        });
        let message = unpack_err(&tar);
        assert!(message.contains("a/d/../escaped"), "{message}");
    }
}
