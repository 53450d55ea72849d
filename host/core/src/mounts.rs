//! Mounting what backends describe as `{type, source, options}` (containerd's `mount.All`), and
//! reading the kernel's mount table to know what is mounted where.
//!
//! Mount points are found in `/proc/self/mountinfo`, not by comparing device numbers: a bind
//! mount of a directory on the same filesystem has its parent's device.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::error::{Error, IoContext, Result};
use crate::snapshot::SnapshotMount;

/// Mount options that are flags to mount(2) rather than data for the filesystem, as
/// containerd's `parseMountOptions` splits them. `true`: the flag is cleared, not set.
const FLAGS: &[(&str, bool, MsFlags)] = &[
    ("async", true, MsFlags::MS_SYNCHRONOUS),
    ("atime", true, MsFlags::MS_NOATIME),
    ("bind", false, MsFlags::MS_BIND),
    ("defaults", false, MsFlags::empty()),
    ("dev", true, MsFlags::MS_NODEV),
    ("diratime", true, MsFlags::MS_NODIRATIME),
    ("dirsync", false, MsFlags::MS_DIRSYNC),
    ("exec", true, MsFlags::MS_NOEXEC),
    ("noatime", false, MsFlags::MS_NOATIME),
    ("nodev", false, MsFlags::MS_NODEV),
    ("nodiratime", false, MsFlags::MS_NODIRATIME),
    ("noexec", false, MsFlags::MS_NOEXEC),
    ("nosuid", false, MsFlags::MS_NOSUID),
    ("rbind", false, MsFlags::MS_BIND.union(MsFlags::MS_REC)),
    ("relatime", false, MsFlags::MS_RELATIME),
    ("ro", false, MsFlags::MS_RDONLY),
    ("rw", true, MsFlags::MS_RDONLY),
    ("suid", true, MsFlags::MS_NOSUID),
    ("sync", false, MsFlags::MS_SYNCHRONOUS),
];

/// `options` split into mount(2) flags and the filesystem's data string.
fn parse_options(options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for option in options {
        match FLAGS.iter().find(|(name, ..)| name == option) {
            Some((_, true, flag)) => flags.remove(*flag),
            Some((_, false, flag)) => flags.insert(*flag),
            None => data.push(option.as_str()),
        }
    }
    (flags, data.join(","))
}

/// Mounts each of `mounts` on `target`, in order. A read-only bind mount is made read-only by
/// a remount, as the kernel ignores `ro` on the bind itself.
pub fn mount_all(mounts: &[SnapshotMount], target: &Path) -> Result<()> {
    for m in mounts {
        let (flags, data) = parse_options(&m.options);
        let what = || format!("mounting {} ({}) on {}", m.source, m.kind, target.display());
        mount(
            Some(m.source.as_str()),
            target,
            Some(m.kind.as_str()),
            flags,
            (!data.is_empty()).then_some(data.as_str()),
        )
        .context(what)?;
        if flags.contains(MsFlags::MS_BIND) && flags.contains(MsFlags::MS_RDONLY) {
            mount(
                None::<&str>,
                target,
                None::<&str>,
                flags | MsFlags::MS_REMOUNT,
                None::<&str>,
            )
            .context(what)?;
        }
    }
    Ok(())
}

/// Unmounts everything stacked on `target`; nothing mounted there is fine.
pub fn unmount_all(target: &Path) -> Result<()> {
    while is_mount_point(target)? {
        match umount2(target, MntFlags::empty()) {
            Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
            Err(e) => {
                return Err(Error::io(
                    format!("unmounting {}", target.display()),
                    std::io::Error::from(e),
                ));
            }
        }
    }
    Ok(())
}

/// rkt's MountGC: every mount at or below `path`, children before parents, each made private
/// first (so the unmount does not propagate to peers), unmounted; ENOENT and EINVAL (already
/// gone, or not a mount any more) are ignored. What a killed process left mounted under a
/// directory berth is about to remove. The mount points unmounted.
pub fn unmount_under(path: &Path) -> Result<Vec<PathBuf>> {
    let table = std::fs::read_to_string("/proc/self/mountinfo")
        .context(|| "reading /proc/self/mountinfo".to_string())?;
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut done = Vec::new();
    for point in unmount_order(&table, &path) {
        let _ = mount(
            None::<&str>,
            &point,
            None::<&str>,
            MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            None::<&str>,
        );
        match umount2(&point, MntFlags::empty()) {
            Ok(()) => done.push(point),
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::EINVAL) => {}
            Err(e) => {
                return Err(Error::io(
                    format!("unmounting {}", point.display()),
                    std::io::Error::from(e),
                ));
            }
        }
    }
    Ok(done)
}

/// The mounts of `table` at or below `path`, children before parents: a mount comes only
/// after every mount stacked on or below it (by mount and parent ids, not list order, which
/// a remount can reorder).
fn unmount_order(table: &str, path: &Path) -> Vec<PathBuf> {
    let mut mounts: Vec<(u64, u64, PathBuf)> = table
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let id = fields.next()?.parse().ok()?;
            let parent = fields.next()?.parse().ok()?;
            let point = PathBuf::from(unescape(fields.nth(2)?));
            Some((id, parent, point))
        })
        .filter(|(_, _, point)| point.starts_with(path))
        .collect();
    let mut order = Vec::new();
    while !mounts.is_empty() {
        let leaf = mounts
            .iter()
            .rposition(|(id, _, _)| !mounts.iter().any(|(_, parent, _)| parent == id))
            .unwrap_or(mounts.len() - 1); // a cycle cannot happen; never loop forever
        order.push(mounts.remove(leaf).2);
    }
    order
}

/// Whether something is mounted at `path`, by the kernel's mount table.
pub fn is_mount_point(path: &Path) -> Result<bool> {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    Ok(mount_points()?.contains(&path))
}

/// Every mount point of this process's mount namespace, in mount order.
pub fn mount_points() -> Result<Vec<PathBuf>> {
    let table = std::fs::read_to_string("/proc/self/mountinfo")
        .context(|| "reading /proc/self/mountinfo".to_string())?;
    Ok(parse_mount_points(&table))
}

/// Where a mount whose filesystem options include `option` (e.g. an overlay's
/// `upperdir=...`) is mounted, if one is.
pub fn mounted_with(option: &str) -> Result<Option<PathBuf>> {
    let table = std::fs::read_to_string("/proc/self/mountinfo")
        .context(|| "reading /proc/self/mountinfo".to_string())?;
    Ok(find_mounted_with(&table, option))
}

fn find_mounted_with(table: &str, option: &str) -> Option<PathBuf> {
    table.lines().find_map(|line| {
        let (fields, filesystem) = line.split_once(" - ")?;
        let options = filesystem.split(' ').nth(2)?;
        let point = fields.split(' ').nth(4)?;
        options
            .split(',')
            .any(|o| unescape(o) == option)
            .then(|| PathBuf::from(unescape(point)))
    })
}

fn parse_mount_points(table: &str) -> Vec<PathBuf> {
    table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape(field)))
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo` octal escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|o| bytes[i] == b'\\' && o.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(o) => {
                out.push((o[0] - b'0') * 64 + (o[1] - b'0') * 8 + (o[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mount_is_found_by_one_of_its_options() {
        let table = "30 25 0:27 / /run/a/rootfs rw,relatime shared:1 - overlay overlay rw,lowerdir=/l,upperdir=/u1,workdir=/w\n\
                     31 25 0:28 / /run/b\\040c rw - overlay overlay rw,lowerdir=/l,upperdir=/u2,workdir=/w\n";
        assert_eq!(
            find_mounted_with(table, "upperdir=/u2"),
            Some(PathBuf::from("/run/b c"))
        );
        assert_eq!(find_mounted_with(table, "upperdir=/u"), None);
    }

    #[test]
    fn options_split_into_flags_and_data() {
        let options: Vec<String> = ["ro", "rbind", "lowerdir=/a:/b", "upperdir=/u", "nosuid"]
            .map(String::from)
            .to_vec();
        let (flags, data) = parse_options(&options);
        assert_eq!(
            flags,
            MsFlags::MS_RDONLY | MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_NOSUID
        );
        assert_eq!(data, "lowerdir=/a:/b,upperdir=/u");
        let (flags, _) = parse_options(&["ro".to_string(), "rw".to_string()]);
        assert!(flags.is_empty());
    }

    #[test]
    fn mounts_under_a_path_go_children_first_whatever_the_list_order() {
        // /c/r is mounted, then /c/r/proc and /c/r/dev on it, /c/r/dev/pts on that; /c/r is
        // then remounted (a new id, listed last, with the old one's children on it).
        let table = "\
1 0 8:1 / / rw - ext4 /dev/sda1 rw
20 1 0:40 / /c/r rw - overlay overlay rw
21 20 0:41 / /c/r/proc rw - proc proc rw
22 20 0:42 / /c/r/dev rw - tmpfs tmpfs rw
23 22 0:43 / /c/r/dev/pts rw - devpts devpts rw
24 1 0:44 / /elsewhere rw - tmpfs tmpfs rw
25 23 0:45 / /c/r/dev/pts/x rw - tmpfs tmpfs rw
";
        let order = unmount_order(table, Path::new("/c"));
        let at = |p: &str| order.iter().position(|o| o == Path::new(p)).unwrap();
        assert_eq!(order.len(), 5, "{order:?}");
        assert!(at("/c/r/dev/pts/x") < at("/c/r/dev/pts"));
        assert!(at("/c/r/dev/pts") < at("/c/r/dev"));
        assert!(at("/c/r/dev") < at("/c/r"));
        assert!(at("/c/r/proc") < at("/c/r"));
        assert!(!order.iter().any(|o| o.starts_with("/elsewhere")));
    }

    #[test]
    fn mount_points_come_from_mountinfo_with_escapes() {
        let table = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                     35 22 0:31 / /run/with\\040space rw - tmpfs tmpfs rw\n";
        assert_eq!(
            parse_mount_points(table),
            [PathBuf::from("/"), PathBuf::from("/run/with space")]
        );
        assert!(is_mount_point(Path::new("/proc")).unwrap());
        let here = tempfile::tempdir().unwrap();
        assert!(!is_mount_point(here.path()).unwrap());
    }
}
