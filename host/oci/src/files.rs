//! A filesystem tree as tar streams (`berth cp`), confined to its root.
//!
//! Every path is resolved with `openat2(RESOLVE_IN_ROOT)` from a descriptor of the root, so a
//! symlink inside (`/etc -> /`, `../../..`) resolves as it would in the container and never
//! reaches the host. Below that, entries are read through descriptors opened with `O_NOFOLLOW`,
//! and written through their parent's descriptor, never by a path the tree could swap for a
//! symlink mid-copy. Tar entries with `..` in their path are refused.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use berth_core::{Error, IoContext, Object, PathKind, PathStat, Result};
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::unistd::{Gid, Uid};

/// The top entry of a tar [`Root::pack`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Top {
    /// One entry by this name, with everything below it.
    Named(String),
    /// A directory's entries themselves, without an entry for the directory.
    Contents,
}

impl Top {
    /// What `docker cp` makes of a source path: its last component, or the contents for a
    /// path ending in `/.` (and for `/`).
    pub fn of(path: &str) -> Top {
        match last_name(path) {
            Some(name) if !path.ends_with("/.") => Top::Named(name),
            _ => Top::Contents,
        }
    }
}

/// How [`Root::unpack`] writes what it unpacks.
#[derive(Debug, Clone, Default)]
pub struct Unpack {
    /// Every entry owned by this uid and gid; `None` keeps the tar's.
    pub owner: Option<(u32, u32)>,
    /// The tar's top entry renamed (`from`, `to`): `cp c:/etc/hostname ./name`.
    pub rename: Option<(String, String)>,
    /// The tar is the host's own: device nodes are made and set-id bits kept. Off for what a
    /// container sends the host, where a block device node would hand whoever reads the
    /// directory the host's disk and a setuid file root's powers: devices are skipped and
    /// set-id bits dropped.
    pub trusted: bool,
}

/// A directory tree opened as a root: nothing outside it is read or written.
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    pub fn open(path: &Path) -> Result<Root> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io(format!("opening {}", path.display()), e))?;
        Ok(Root {
            // SAFETY: `open` returned a new descriptor that nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            path: path.to_owned(),
        })
    }

    /// What `path` is, a symlink at its end not followed.
    pub fn stat(&self, path: &str) -> Result<PathStat> {
        let fd = self.resolve(path, OFlag::O_PATH | OFlag::O_NOFOLLOW)?;
        let stat = fstat(&fd).map_err(|e| io(format!("reading {path}"), e))?;
        let link_target = match kind(&stat) {
            PathKind::Symlink => {
                Some(read_link(&fd).map_err(|e| io(format!("reading {path}"), e))?)
            }
            _ => None,
        };
        Ok(PathStat {
            kind: kind(&stat),
            size: stat.st_size as u64,
            mode: stat.st_mode & 0o7777,
            link_target: link_target.map(|t| t.to_string_lossy().into_owned()),
        })
    }

    /// Writes a tar of `path` to `out` with `top` as its top entry; every entry owned by
    /// `owner` (uid, gid) when given, else by its own.
    pub fn pack(
        &self,
        path: &str,
        top: &Top,
        owner: Option<(u32, u32)>,
        out: impl Write,
    ) -> Result<()> {
        let fd = self.resolve(path, OFlag::O_PATH | OFlag::O_NOFOLLOW)?;
        let mut tar = Packer {
            tar: tar::Builder::new(out),
            owner,
        };
        match top {
            Top::Named(name) => append(&mut tar, &fd, Path::new(name))?,
            Top::Contents => {
                let stat = fstat(&fd).map_err(|e| io(format!("reading {path}"), e))?;
                if kind(&stat) != PathKind::Directory {
                    return Err(Error::invalid(
                        path,
                        "not a directory (a path ending in /. names a directory's contents)",
                    ));
                }
                append_children(&mut tar, &fd, Path::new(""))?;
            }
        }
        tar.tar
            .into_inner()
            .and_then(|mut out| out.flush())
            .map_err(|e| Error::io("writing the tar", e))
    }

    /// Unpacks the tar `tar` into the existing directory `dir`.
    pub fn unpack(&self, dir: &str, tar: impl Read, options: &Unpack) -> Result<()> {
        let dir = relative(dir);
        let dir_fd = self.resolve_dir(&dir)?;
        let mut archive = tar::Archive::new(tar);
        // Directory times are set once their contents are written.
        let mut directory_times = Vec::new();
        let entries = archive
            .entries()
            .map_err(|e| Error::io("reading the tar", e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| Error::io("reading the tar", e))?;
            let raw = entry
                .path()
                .map_err(|e| Error::io("reading the tar", e))?
                .into_owned();
            let Some(name) = entry_path(&raw, options)? else {
                continue;
            };
            let (parent, leaf) = match (name.parent(), name.file_name()) {
                (Some(parent), Some(leaf)) => (parent.to_owned(), leaf.to_owned()),
                _ => continue,
            };
            let parent_fd = if parent.as_os_str().is_empty() {
                dir_fd
                    .try_clone()
                    .map_err(|e| Error::io("sharing a descriptor", e))?
            } else {
                self.make_dirs(&dir_fd, &dir, &parent)?
            };
            let shown = name.display().to_string();
            let written = write_entry(
                &mut entry,
                &parent_fd,
                &leaf,
                &shown,
                options.trusted,
                |target| {
                    let target = entry_path(target, options)?.unwrap_or_default();
                    self.resolve_relative(&dir.join(&target), OFlag::O_PATH | OFlag::O_NOFOLLOW)
                        .map_err(|e| {
                            io(
                                format!("finding {} for the link {shown}", target.display()),
                                e,
                            )
                        })
                },
            )?;
            let header = entry.header();
            let owner = options
                .owner
                .or_else(|| Some((header.uid().ok()? as u32, header.gid().ok()? as u32)));
            let mtime = header.mtime().unwrap_or(0) as i64;
            let kept_bits = if options.trusted { 0o7777 } else { 0o1777 };
            let mode = header.mode().unwrap_or(0o644) & kept_bits;
            match written {
                Written::File(file) => {
                    set_owner_and_mode(&file, owner, mode, &shown)?;
                    set_times(&file, mtime)
                        .map_err(|e| io(format!("setting the times of {shown}"), e))?;
                }
                Written::Directory(file) => {
                    set_owner_and_mode(&file, owner, mode, &shown)?;
                    directory_times.push((file, mtime, shown));
                }
                Written::Skipped => {}
                Written::Link => {
                    if let Some((uid, gid)) = owner {
                        nix::unistd::fchownat(
                            Some(parent_fd.as_raw_fd()),
                            leaf.as_os_str(),
                            Some(Uid::from_raw(uid)),
                            Some(Gid::from_raw(gid)),
                            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                        )
                        .map_err(|e| io(format!("setting the owner of {shown}"), e))?;
                    }
                }
            }
        }
        for (file, mtime, shown) in directory_times.into_iter().rev() {
            set_times(&file, mtime).map_err(|e| io(format!("setting the times of {shown}"), e))?;
        }
        Ok(())
    }

    /// `path` resolved inside the root (absolute or not, `..` stops at the root, symlinks
    /// resolve as they would inside).
    fn resolve(&self, path: &str, flags: OFlag) -> Result<OwnedFd> {
        self.resolve_relative(&relative(path), flags)
            .map_err(|e| match e {
                Errno::ENOENT => Error::not_found(Object::Path, path),
                e => io(format!("opening {path} under {}", self.path.display()), e),
            })
    }

    fn resolve_relative(&self, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let fd = nix::fcntl::openat2(self.fd.as_raw_fd(), path, how)?;
        // SAFETY: `openat2` returned a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn resolve_dir(&self, dir: &Path) -> Result<OwnedFd> {
        self.resolve_relative(dir, OFlag::O_PATH | OFlag::O_DIRECTORY)
            .map_err(|e| dir_error(dir, e))
    }

    /// The directory `dir/parent`, made as needed below `dir` for a tar that has no entries
    /// for its directories.
    fn make_dirs(&self, dir_fd: &OwnedFd, dir: &Path, parent: &Path) -> Result<OwnedFd> {
        let full = dir.join(parent);
        match self.resolve_relative(&full, OFlag::O_PATH | OFlag::O_DIRECTORY) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(dir_error(&full, e)),
        }
        let mut at = dir_fd
            .try_clone()
            .map_err(|e| Error::io("sharing a descriptor", e))?;
        let mut walked = dir.to_owned();
        for component in parent.components() {
            walked.push(component);
            match nix::sys::stat::mkdirat(
                Some(at.as_raw_fd()),
                component.as_os_str(),
                Mode::from_bits_truncate(0o755),
            ) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(io(format!("making /{}", walked.display()), e)),
            }
            at = self.resolve_dir(&walked)?;
        }
        Ok(at)
    }
}

enum Written {
    File(File),
    Directory(File),
    Link,
    Skipped,
}

/// Writes one entry at `leaf` in `parent`, replacing what is there unless it is a directory
/// and the entry is not.
fn write_entry(
    entry: &mut tar::Entry<impl Read>,
    parent: &OwnedFd,
    leaf: &OsStr,
    shown: &str,
    trusted: bool,
    link_source: impl FnOnce(&Path) -> Result<OwnedFd>,
) -> Result<Written> {
    let at = Some(parent.as_raw_fd());
    let existing = nix::sys::stat::fstatat(at, leaf, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).ok();
    let existing_kind = existing.as_ref().map(kind);
    let entry_type = entry.header().entry_type();
    if entry_type.is_dir() {
        if existing_kind.is_some_and(|k| k != PathKind::Directory) {
            remove(parent, leaf, shown)?;
        }
        match nix::sys::stat::mkdirat(at, leaf, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(io(format!("making {shown}"), e)),
        }
        let fd = nix::fcntl::openat(
            at,
            leaf,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io(format!("opening {shown}"), e))?;
        // SAFETY: `openat` returned a new descriptor that nothing else owns.
        return Ok(Written::Directory(unsafe { File::from_raw_fd(fd) }));
    }
    if existing_kind == Some(PathKind::Directory) {
        return Err(
            Error::conflict(shown, "a directory is there; it is not replaced by a file")
                .with_hint("remove the directory first, or copy to another path"),
        );
    }
    if existing_kind.is_some() {
        remove(parent, leaf, shown)?;
    }
    if entry_type.is_file() || entry_type == tar::EntryType::Continuous {
        let fd = nix::fcntl::openat(
            at,
            leaf,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| io(format!("creating {shown}"), e))?;
        // SAFETY: `openat` returned a new descriptor that nothing else owns.
        let mut file = unsafe { File::from_raw_fd(fd) };
        std::io::copy(entry, &mut file).context(|| format!("writing {shown}"))?;
        return Ok(Written::File(file));
    }
    if entry_type.is_symlink() {
        let target = entry
            .link_name()
            .map_err(|e| Error::io("reading the tar", e))?
            .ok_or_else(|| Error::invalid(shown, "a symlink entry without a target"))?;
        nix::unistd::symlinkat(target.as_os_str(), at, leaf)
            .map_err(|e| io(format!("making the link {shown}"), e))?;
        return Ok(Written::Link);
    }
    if entry_type.is_hard_link() {
        let target = entry
            .link_name()
            .map_err(|e| Error::io("reading the tar", e))?
            .ok_or_else(|| Error::invalid(shown, "a hard link entry without a target"))?;
        let source = link_source(&target)?;
        let leaf_c = std::ffi::CString::new(leaf.as_bytes())
            .map_err(|_| Error::invalid(shown, "a NUL in the name"))?;
        // SAFETY: both descriptors are open and `leaf_c` is NUL-terminated; AT_EMPTY_PATH links
        // the inode `source` holds, not a path that could be swapped.
        let rc = unsafe {
            libc::linkat(
                source.as_raw_fd(),
                c"".as_ptr(),
                parent.as_raw_fd(),
                leaf_c.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        };
        Errno::result(rc).map_err(|e| io(format!("making the link {shown}"), e))?;
        return Ok(Written::Link);
    }
    let node = match entry_type {
        tar::EntryType::Char | tar::EntryType::Block if !trusted => {
            tracing::warn!(entry = shown, "device node not copied");
            return Ok(Written::Skipped);
        }
        tar::EntryType::Char => SFlag::S_IFCHR,
        tar::EntryType::Block => SFlag::S_IFBLK,
        tar::EntryType::Fifo => SFlag::S_IFIFO,
        other => {
            return Err(Error::invalid(
                shown,
                format!("a tar entry of type {other:?}, which berth cp does not copy"),
            ));
        }
    };
    let header = entry.header();
    let device = nix::sys::stat::makedev(
        header.device_major().ok().flatten().unwrap_or(0).into(),
        header.device_minor().ok().flatten().unwrap_or(0).into(),
    );
    let mode = Mode::from_bits_truncate(header.mode().unwrap_or(0o644) & 0o777);
    nix::sys::stat::mknodat(at, leaf, node, mode, device)
        .map_err(|e| io(format!("making {shown}"), e))?;
    Ok(Written::Link)
}

fn remove(parent: &OwnedFd, leaf: &OsStr, shown: &str) -> Result<()> {
    nix::unistd::unlinkat(
        Some(parent.as_raw_fd()),
        leaf,
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    )
    .map_err(|e| io(format!("replacing {shown}"), e))
}

struct Packer<W: Write> {
    tar: tar::Builder<W>,
    owner: Option<(u32, u32)>,
}

/// Appends the entry `fd` (opened `O_PATH | O_NOFOLLOW`) as `name`, and what is below it.
fn append<W: Write>(packer: &mut Packer<W>, fd: &OwnedFd, name: &Path) -> Result<()> {
    let tar = &mut packer.tar;
    let shown = name.display().to_string();
    let stat = fstat(fd).map_err(|e| io(format!("reading {shown}"), e))?;
    let mut header = tar::Header::new_gnu();
    header.set_mode(stat.st_mode & 0o7777);
    let (uid, gid) = packer.owner.unwrap_or((stat.st_uid, stat.st_gid));
    header.set_uid(uid.into());
    header.set_gid(gid.into());
    header.set_mtime(stat.st_mtime.max(0) as u64);
    header.set_size(0);
    let failed = |e: std::io::Error| Error::io(format!("writing {shown} to the tar"), e);
    match SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFDIR => {
            header.set_entry_type(tar::EntryType::Directory);
            tar.append_data(&mut header, name, std::io::empty())
                .map_err(failed)?;
            append_children(packer, fd, name)
        }
        SFlag::S_IFREG => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(stat.st_size as u64);
            // The O_PATH descriptor holds the inode, so the reopen reads this file and no other.
            let file =
                reopen(fd, OFlag::O_RDONLY).map_err(|e| io(format!("opening {shown}"), e))?;
            tar.append_data(&mut header, name, file.take(stat.st_size as u64))
                .map_err(failed)
        }
        SFlag::S_IFLNK => {
            header.set_entry_type(tar::EntryType::Symlink);
            let target = read_link(fd).map_err(|e| io(format!("reading {shown}"), e))?;
            tar.append_link(&mut header, name, target).map_err(failed)
        }
        kind @ (SFlag::S_IFCHR | SFlag::S_IFBLK | SFlag::S_IFIFO) => {
            header.set_entry_type(match kind {
                SFlag::S_IFCHR => tar::EntryType::Char,
                SFlag::S_IFBLK => tar::EntryType::Block,
                _ => tar::EntryType::Fifo,
            });
            let (major, minor) = (
                nix::sys::stat::major(stat.st_rdev),
                nix::sys::stat::minor(stat.st_rdev),
            );
            header.set_device_major(major as u32).map_err(failed)?;
            header.set_device_minor(minor as u32).map_err(failed)?;
            tar.append_data(&mut header, name, std::io::empty())
                .map_err(failed)
        }
        // A socket means nothing once copied, as in docker's archives.
        _ => Ok(()),
    }
}

fn append_children<W: Write>(packer: &mut Packer<W>, dir: &OwnedFd, name: &Path) -> Result<()> {
    let shown = || format!("/{}", name.display());
    // The descriptor holds the directory, so listing it by its /proc/self/fd link lists this one.
    let listing = std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))
        .context(|| format!("listing {}", shown()))?;
    let mut children = Vec::new();
    for child in listing {
        children.push(
            child
                .context(|| format!("listing {}", shown()))?
                .file_name(),
        );
    }
    children.sort();
    for child in children {
        let fd = nix::fcntl::openat(
            Some(dir.as_raw_fd()),
            child.as_os_str(),
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            io(
                format!("opening {}/{}", shown(), child.to_string_lossy()),
                e,
            )
        })?;
        // SAFETY: `openat` returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        append(packer, &fd, &name.join(&child))?;
    }
    Ok(())
}

/// Opens the inode an `O_PATH` descriptor holds, through this process's own `/proc/self/fd`.
fn reopen(fd: &OwnedFd, flags: OFlag) -> nix::Result<File> {
    let fd = nix::fcntl::open(
        format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str(),
        flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
        Mode::empty(),
    )?;
    // SAFETY: `open` returned a new descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn fstat(fd: &OwnedFd) -> nix::Result<FileStat> {
    nix::sys::stat::fstatat(
        Some(fd.as_raw_fd()),
        "",
        nix::fcntl::AtFlags::AT_EMPTY_PATH | nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
}

fn read_link(fd: &OwnedFd) -> nix::Result<OsString> {
    nix::fcntl::readlinkat(Some(fd.as_raw_fd()), "")
}

/// Through the descriptor, so nothing a path could be swapped for is changed.
fn set_owner_and_mode(
    file: &File,
    owner: Option<(u32, u32)>,
    mode: u32,
    shown: &str,
) -> Result<()> {
    if let Some((uid, gid)) = owner {
        nix::unistd::fchown(
            file.as_raw_fd(),
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
        )
        .map_err(|e| io(format!("setting the owner of {shown}"), e))?;
    }
    nix::sys::stat::fchmod(file.as_raw_fd(), Mode::from_bits_truncate(mode))
        .map_err(|e| io(format!("setting the mode of {shown}"), e))
}

fn set_times(file: &File, mtime: i64) -> nix::Result<()> {
    let at = nix::sys::time::TimeSpec::new(mtime, 0);
    nix::sys::stat::futimens(file.as_raw_fd(), &at, &at)
}

fn kind(stat: &FileStat) -> PathKind {
    match SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFDIR => PathKind::Directory,
        SFlag::S_IFREG => PathKind::File,
        SFlag::S_IFLNK => PathKind::Symlink,
        _ => PathKind::Other,
    }
}

/// Where a tar entry goes below the target directory: `None` for the entry of the target
/// itself (`./`); an error for one that climbs out (`..`).
fn entry_path(raw: &Path, options: &Unpack) -> Result<Option<PathBuf>> {
    let mut path = confined(raw)?;
    if let Some((from, to)) = &options.rename
        && let Ok(rest) = path.strip_prefix(from)
    {
        path = Path::new(to).join(rest);
    }
    Ok((!path.as_os_str().is_empty()).then_some(path))
}

/// `path` without its root and `.` components; an error for `..`.
fn confined(path: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                return Err(Error::invalid(
                    format!("tar entry {}", path.display()),
                    "it climbs out of the target directory (..)",
                ));
            }
        }
    }
    Ok(out)
}

/// A path as `openat2` takes it below the root: no leading `/`, `.` for the root itself.
fn relative(path: &str) -> PathBuf {
    let trimmed = path.trim_start_matches('/');
    if trimmed.is_empty() {
        PathBuf::from(".")
    } else {
        PathBuf::from(trimmed)
    }
}

/// The last component of `path` as written (`/etc/` is `etc`); `None` for `/`.
pub fn last_name(path: &str) -> Option<String> {
    Path::new(path).components().rev().find_map(|c| match c {
        Component::Normal(name) => Some(name.to_string_lossy().into_owned()),
        _ => None,
    })
}

/// The error for directory `dir` (below the root) that would not open.
fn dir_error(dir: &Path, errno: Errno) -> Error {
    let shown = format!("/{}", dir.strip_prefix(".").unwrap_or(dir).display());
    match errno {
        Errno::ENOENT => Error::not_found(Object::Path, shown),
        Errno::ENOTDIR => Error::invalid(shown, "not a directory"),
        e => io(format!("opening {shown}"), e),
    }
}

fn io(context: String, errno: Errno) -> Error {
    Error::io(context, std::io::Error::from(errno))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        (dir, root)
    }

    fn tar_of(root: &Root, path: &str) -> Vec<u8> {
        let mut out = Vec::new();
        root.pack(path, &Top::of(path), None, &mut out).unwrap();
        out
    }

    #[test]
    fn a_symlink_to_the_host_root_resolves_inside() {
        let (dir, root) = root();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/hostname"), "inside\n").unwrap();
        std::os::unix::fs::symlink("/", dir.path().join("escape")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", dir.path().join("up")).unwrap();

        let stat = root.stat("/escape/etc/hostname").unwrap();
        assert_eq!((stat.kind, stat.size), (PathKind::File, 7));
        assert_eq!(root.stat("/up/hostname").unwrap().size, 7);

        // A write through the link lands inside too.
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(4);
        header.set_mode(0o644);
        tar.append_data(&mut header, "marker", &b"data"[..])
            .unwrap();
        let tar = tar.into_inner().unwrap();
        root.unpack("/escape/etc", &tar[..], &Unpack::default())
            .unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("etc/marker")).unwrap(),
            b"data"
        );
    }

    #[test]
    fn a_tar_that_links_then_writes_through_the_link_stays_inside() {
        let (dir, root) = root();
        let mut tar = tar::Builder::new(Vec::new());
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        tar.append_link(&mut link, "etc", "/").unwrap();
        let mut file = tar::Header::new_gnu();
        file.set_size(1);
        file.set_mode(0o644);
        tar.append_data(&mut file, "etc/berth-escape-check", &b"x"[..])
            .unwrap();
        let tar = tar.into_inner().unwrap();
        root.unpack("/", &tar[..], &Unpack::default()).unwrap();
        assert!(dir.path().join("berth-escape-check").exists());
        assert!(!Path::new("/etc/berth-escape-check").exists());
    }

    #[test]
    fn a_tar_entry_that_climbs_out_is_refused() {
        let (_dir, root) = root();
        // tar::Builder refuses `..` itself, so the name goes into the header raw.
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..11].copy_from_slice(b"../outside\0");
        header.set_size(0);
        header.set_cksum();
        let mut tar = header.as_bytes().to_vec();
        tar.extend_from_slice(&[0; 1024]);
        let error = root.unpack("/", &tar[..], &Unpack::default()).unwrap_err();
        assert!(error.to_string().contains("climbs out"), "{error}");
    }

    #[test]
    fn a_tree_round_trips_with_its_modes_links_and_a_new_name() {
        let (source_dir, source) = root();
        let tree = source_dir.path().join("app");
        std::fs::create_dir_all(tree.join("bin")).unwrap();
        std::fs::write(tree.join("bin/run"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            tree.join("bin/run"),
            std::os::unix::fs::PermissionsExt::from_mode(0o751),
        )
        .unwrap();
        std::os::unix::fs::symlink("bin/run", tree.join("start")).unwrap();
        let tar = tar_of(&source, "/app");

        let (target_dir, target) = root();
        let options = Unpack {
            rename: Some(("app".into(), "copy".into())),
            owner: Some((0, 0)),
            trusted: false,
        };
        target.unpack("/", &tar[..], &options).unwrap();
        let copied = target_dir.path().join("copy");
        assert_eq!(
            std::fs::read_to_string(copied.join("bin/run")).unwrap(),
            "#!/bin/sh\n"
        );
        let mode = std::fs::metadata(copied.join("bin/run"))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o7777,
            0o751
        );
        assert_eq!(
            std::fs::read_link(copied.join("start")).unwrap(),
            Path::new("bin/run")
        );

        // `/.` copies what is inside, not the directory.
        let (contents_dir, contents) = root();
        contents
            .unpack("/", &tar_of(&source, "/app/.")[..], &Unpack::default())
            .unwrap();
        assert!(contents_dir.path().join("bin/run").is_file());
    }

    #[test]
    fn device_nodes_and_set_id_bits_come_only_from_trusted_tars() {
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Block);
        header.set_device_major(7).unwrap();
        header.set_device_minor(0).unwrap();
        header.set_size(0);
        header.set_mode(0o660);
        tar.append_data(&mut header, "disk", std::io::empty())
            .unwrap();
        let mut setuid = tar::Header::new_gnu();
        setuid.set_size(1);
        setuid.set_mode(0o4755);
        tar.append_data(&mut setuid, "su", &b"x"[..]).unwrap();
        let tar = tar.into_inner().unwrap();
        let mode = |dir: &Path| {
            let meta = std::fs::metadata(dir.join("su")).unwrap();
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777
        };

        let (untrusted_dir, untrusted) = root();
        untrusted.unpack("/", &tar[..], &Unpack::default()).unwrap();
        assert!(std::fs::symlink_metadata(untrusted_dir.path().join("disk")).is_err());
        assert_eq!(mode(untrusted_dir.path()), 0o755);
        let (trusted_dir, trusted) = root();
        let options = Unpack {
            trusted: true,
            ..Unpack::default()
        };
        trusted.unpack("/", &tar[..], &options).unwrap();
        let made = std::fs::symlink_metadata(trusted_dir.path().join("disk")).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_block_device(
            &made.file_type()
        ));
        assert_eq!(mode(trusted_dir.path()), 0o4755);
    }

    #[test]
    fn a_file_does_not_replace_a_directory() {
        let (dir, root) = root();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        tar.append_data(&mut header, "data", &b"x"[..]).unwrap();
        let error = root
            .unpack("/", &tar.into_inner().unwrap()[..], &Unpack::default())
            .unwrap_err();
        assert_eq!(error.kind(), berth_core::ErrorKind::Conflict);
    }

    #[test]
    fn missing_paths_are_not_found_and_names_are_docker_s() {
        let (_dir, root) = root();
        assert_eq!(
            root.stat("/nope").unwrap_err().kind(),
            berth_core::ErrorKind::NotFound
        );
        assert_eq!(Top::of("/etc/"), Top::Named("etc".into()));
        assert_eq!(Top::of("/etc/."), Top::Contents);
        assert_eq!(Top::of("/"), Top::Contents);
    }
}
