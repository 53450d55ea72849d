//! Unpacking one image layer into its own directory, ready to be an overlayfs lower dir.
//!
//! Layers come from archives nobody vetted, so extraction is confined: entry paths are
//! sanitised (no `..`, no absolute paths), nothing is written through a symlink, and hard links
//! must point inside the layer. OCI whiteouts become overlayfs whiteouts (`.wh.NAME` -> a 0:0
//! character device, `.wh..wh..opq` -> the `trusted.overlay.opaque` xattr), so a lower layer's
//! file is hidden exactly as in docker's overlay2 driver. The uncompressed stream is hashed on the
//! way through: its sha256 is the layer's diff id, which the caller checks against the image
//! config.

use std::ffi::CString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use berth_oci::archive::sanitize;
use sha2::{Digest, Sha256};

/// Prefix of an OCI whiteout entry.
const WHITEOUT_PREFIX: &str = ".wh.";
/// Marks its directory opaque: nothing from lower layers shows through.
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// A reader that hashes everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Reads the rest of the stream (so the digest covers all of it) and returns the hex digest
    /// and the byte count.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((hex::encode(self.hasher.finalize()), self.bytes))
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// What a layer entry asks for once whiteouts are recognised.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Unpack the entry at this (sanitised, relative) path.
    Unpack(PathBuf),
    /// Hide `PATH` from lower layers.
    Whiteout(PathBuf),
    /// Make this directory opaque.
    Opaque(PathBuf),
    /// Nothing to write (the root itself).
    Skip,
}

/// Classifies one entry path: plain, whiteout or opaque marker.
pub fn classify(path: &Path) -> Option<Action> {
    let clean = sanitize(path)?;
    let Some(name) = clean.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Some(Action::Skip);
    };
    let parent = clean.parent().map(Path::to_path_buf).unwrap_or_default();
    if name == OPAQUE_MARKER {
        return Some(Action::Opaque(parent));
    }
    if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
        if hidden.is_empty() || hidden == "." || hidden == ".." {
            return None;
        }
        return Some(Action::Whiteout(parent.join(hidden)));
    }
    Some(Action::Unpack(clean))
}

/// Why a layer could not be unpacked; the caller adds which layer.
#[derive(Debug)]
pub enum UnpackError {
    /// The archive itself is bad (unsafe path, truncated, not a tar).
    Malformed(String),
    /// Writing to the layer directory failed.
    Io(String, io::Error),
}

impl std::fmt::Display for UnpackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnpackError::Malformed(m) => f.write_str(m),
            UnpackError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

/// Unpacks the uncompressed tar stream `reader` into `dest` (an empty directory) and returns
/// the stream's sha256 (the diff id, hex) and its size.
pub fn unpack<R: Read>(reader: R, dest: &Path) -> Result<(String, u64), UnpackError> {
    let mut hashing = HashingReader::new(reader);
    {
        let mut archive = tar::Archive::new(&mut hashing);
        archive.set_preserve_permissions(true);
        archive.set_preserve_ownerships(true);
        archive.set_preserve_mtime(true);
        archive.set_unpack_xattrs(true);
        archive.set_overwrite(true);
        let entries = archive
            .entries()
            .map_err(|e| UnpackError::Malformed(format!("not a tar archive: {e}")))?;
        for entry in entries {
            let mut entry =
                entry.map_err(|e| UnpackError::Malformed(format!("reading the tar: {e}")))?;
            let raw = entry
                .path()
                .map_err(|e| UnpackError::Malformed(format!("bad entry path: {e}")))?
                .into_owned();
            let action = classify(&raw).ok_or_else(|| {
                UnpackError::Malformed(format!("entry {} escapes the layer", raw.display()))
            })?;
            match action {
                Action::Skip => {}
                Action::Opaque(dir) => {
                    // Creates `dir` itself (checked like any parent), then marks it.
                    prepare_parent(dest, &dir.join(OPAQUE_MARKER))?;
                    let target = dest.join(&dir);
                    set_xattr(&target, "trusted.overlay.opaque", b"y").map_err(|e| {
                        UnpackError::Io(format!("marking {} opaque", target.display()), e)
                    })?;
                }
                Action::Whiteout(path) => {
                    let target = prepare_parent(dest, &path)?;
                    remove_existing(&target, false)?;
                    mknod(&target, libc::S_IFCHR, 0).map_err(|e| {
                        UnpackError::Io(format!("creating whiteout {}", target.display()), e)
                    })?;
                }
                Action::Unpack(path) => unpack_entry(&mut entry, dest, &path)?,
            }
        }
    }
    hashing
        .finish()
        .map_err(|e| UnpackError::Malformed(format!("reading the layer stream: {e}")))
}

/// Creates the parent directories of `rel` inside `dest`, refusing to pass through a symlink,
/// and returns the full target path.
fn prepare_parent(dest: &Path, rel: &Path) -> Result<PathBuf, UnpackError> {
    let mut current = dest.to_path_buf();
    if let Some(parent) = rel.parent() {
        for part in parent.components() {
            current.push(part);
            match fs::symlink_metadata(&current) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(UnpackError::Malformed(format!(
                        "entry {} would be written through the symlink {}",
                        rel.display(),
                        current.strip_prefix(dest).unwrap_or(&current).display()
                    )));
                }
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    // A file where a directory is needed: the later entry wins, as in docker.
                    fs::remove_file(&current).map_err(|e| {
                        UnpackError::Io(format!("replacing {}", current.display()), e)
                    })?;
                    ensure_dir(&current)?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => ensure_dir(&current)?,
                Err(e) => {
                    return Err(UnpackError::Io(
                        format!("inspecting {}", current.display()),
                        e,
                    ));
                }
            }
        }
    }
    Ok(dest.join(rel))
}

fn ensure_dir(path: &Path) -> Result<(), UnpackError> {
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(UnpackError::Io(format!("creating {}", path.display()), e)),
    }
}

/// Removes whatever is at `path` so a new entry can take its place; a directory stays when the
/// new entry is a directory too (its contents merge).
fn remove_existing(path: &Path, keep_dir: bool) -> Result<(), UnpackError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            if keep_dir {
                Ok(())
            } else {
                fs::remove_dir_all(path)
                    .map_err(|e| UnpackError::Io(format!("replacing {}", path.display()), e))
            }
        }
        Ok(_) => fs::remove_file(path)
            .map_err(|e| UnpackError::Io(format!("replacing {}", path.display()), e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(UnpackError::Io(format!("inspecting {}", path.display()), e)),
    }
}

fn unpack_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    dest: &Path,
    rel: &Path,
) -> Result<(), UnpackError> {
    let target = prepare_parent(dest, rel)?;
    let kind = entry.header().entry_type();
    remove_existing(&target, kind.is_dir())?;
    // The tar crate reports bad header fields as errors without an errno: those are the
    // archive's fault, while an errno (EACCES) or a full or read-only disk is the host's (the
    // crate's wrapper keeps the latter's kind, not its errno).
    let io_err = |e: io::Error| {
        if e.raw_os_error().is_some() || berth_core::error::is_storage(&e) {
            UnpackError::Io(format!("unpacking {}", rel.display()), e)
        } else {
            UnpackError::Malformed(format!("entry {}: {e}", rel.display()))
        }
    };
    if kind.is_hard_link() {
        let link = entry
            .link_name()
            .map_err(|e| {
                UnpackError::Malformed(format!("bad link name for {}: {e}", rel.display()))
            })?
            .ok_or_else(|| {
                UnpackError::Malformed(format!("hard link {} has no target", rel.display()))
            })?;
        let source = sanitize(&link)
            .filter(|s| !s.as_os_str().is_empty())
            .ok_or_else(|| {
                UnpackError::Malformed(format!(
                    "hard link {} points outside the layer",
                    rel.display()
                ))
            })?;
        let source = prepare_parent(dest, &source)?;
        if fs::symlink_metadata(&source).is_ok_and(|m| m.is_dir()) {
            return Err(UnpackError::Malformed(format!(
                "hard link {} points at a directory",
                rel.display()
            )));
        }
        return fs::hard_link(&source, &target).map_err(io_err);
    }
    if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
        let header = entry.header();
        let mode = header.mode().map_err(io_err)? & 0o7777;
        let file_type = if kind.is_fifo() {
            libc::S_IFIFO
        } else if kind.is_block_special() {
            libc::S_IFBLK
        } else {
            libc::S_IFCHR
        };
        let major = header.device_major().map_err(io_err)?.unwrap_or(0);
        let minor = header.device_minor().map_err(io_err)?.unwrap_or(0);
        mknod(&target, file_type | mode, libc::makedev(major, minor)).map_err(io_err)?;
        let (uid, gid) = (
            header.uid().map_err(io_err)? as u32,
            header.gid().map_err(io_err)? as u32,
        );
        return std::os::unix::fs::lchown(&target, Some(uid), Some(gid)).map_err(io_err);
    }
    entry.unpack(&target).map_err(io_err)?;
    Ok(())
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn mknod(path: &Path, mode: libc::mode_t, dev: libc::dev_t) -> io::Result<()> {
    let c = cstring(path)?;
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    if unsafe { libc::mknod(c.as_ptr(), mode, dev) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let c = cstring(path)?;
    let n = CString::new(name).expect("xattr names have no NUL");
    // SAFETY: both strings are valid for the call; value points to `value.len()` bytes.
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Writes `dir` as a tar stream with entries in sorted order, so the same tree always gives the
/// same bytes (and the same diff id).
pub fn tar_directory<W: io::Write>(dir: &Path, out: W) -> io::Result<W> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Complete);
    append_sorted(&mut builder, dir, Path::new(""))?;
    builder.into_inner()
}

fn append_sorted<W: io::Write>(
    builder: &mut tar::Builder<W>,
    root: &Path,
    rel: &Path,
) -> io::Result<()> {
    let dir = root.join(rel);
    let mut names: Vec<_> = fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort();
    for name in names {
        let rel_child = rel.join(&name);
        let full = root.join(&rel_child);
        builder.append_path_with_name(&full, &rel_child)?;
        if fs::symlink_metadata(&full)?.is_dir() {
            append_sorted(builder, root, &rel_child)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn whiteouts_are_recognised() {
        assert_eq!(
            classify(Path::new("./etc/.wh.passwd")),
            Some(Action::Whiteout("etc/passwd".into()))
        );
        assert_eq!(
            classify(Path::new("var/lib/.wh..wh..opq")),
            Some(Action::Opaque("var/lib".into()))
        );
        assert_eq!(
            classify(Path::new("/bin/sh")),
            Some(Action::Unpack("bin/sh".into()))
        );
        assert_eq!(classify(Path::new("./")), Some(Action::Skip));
        assert_eq!(classify(Path::new("../etc/passwd")), None);
        assert_eq!(classify(Path::new("a/../../b")), None);
    }

    fn tar_of(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o755);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_size(data.len() as u64);
            if let Some(link) = link {
                h.set_link_name(link).unwrap();
            }
            // Raw names, so tests can build hostile paths the builder would refuse.
            let name = h.as_old_mut().name.as_mut();
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn unpacks_files_and_whiteouts() {
        let dir = tempfile::tempdir().unwrap();
        let data = tar_of(&[
            ("etc/", tar::EntryType::Directory, b"", None),
            ("etc/hello", tar::EntryType::Regular, b"hi", None),
            ("etc/.wh.gone", tar::EntryType::Regular, b"", None),
            ("var/.wh..wh..opq", tar::EntryType::Regular, b"", None),
            ("etc/link", tar::EntryType::Link, b"", Some("etc/hello")),
        ]);
        let (digest, size) = unpack(&data[..], dir.path()).unwrap();
        assert_eq!(size, data.len() as u64);
        assert_eq!(digest, hex::encode(Sha256::digest(&data)));
        assert_eq!(fs::read(dir.path().join("etc/hello")).unwrap(), b"hi");
        assert_eq!(fs::read(dir.path().join("etc/link")).unwrap(), b"hi");
        let gone = fs::symlink_metadata(dir.path().join("etc/gone")).unwrap();
        assert!(gone.file_type().is_char_device());
        assert!(dir.path().join("var").is_dir());
    }

    #[test]
    fn refuses_escapes() {
        for entries in [
            vec![("../evil", tar::EntryType::Regular, &b"x"[..], None)],
            vec![
                ("esc", tar::EntryType::Symlink, &b""[..], Some("/tmp")),
                ("esc/evil", tar::EntryType::Regular, &b"x"[..], None),
            ],
            vec![(
                "l",
                tar::EntryType::Link,
                &b""[..],
                Some("../../etc/passwd"),
            )],
        ] {
            let dir = tempfile::tempdir().unwrap();
            let layer = dir.path().join("layer");
            fs::create_dir(&layer).unwrap();
            let data = tar_of(&entries);
            assert!(
                matches!(unpack(&data[..], &layer), Err(UnpackError::Malformed(_))),
                "{entries:?}"
            );
            assert!(!dir.path().join("evil").exists());
        }
    }

    #[test]
    fn directory_tars_are_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("b")).unwrap();
        fs::write(dir.path().join("b/x"), "1").unwrap();
        fs::write(dir.path().join("a"), "2").unwrap();
        let one = tar_directory(dir.path(), Vec::new()).unwrap();
        let two = tar_directory(dir.path(), Vec::new()).unwrap();
        assert_eq!(one, two);
    }
}
