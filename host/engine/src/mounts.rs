//! `berth snapshot mount|unmount`: a snapshot's filesystem on a directory of its own under the
//! run dir, and nowhere else.

use std::path::{Path, PathBuf};

use berth_core::{Error, Result, SnapshotMount, mounts};

/// Mounts `mounts` (snapshot `key`'s) on a new directory under `root`; the directory. A failed
/// mount leaves no directory behind.
pub(crate) fn mount_snapshot(root: &Path, key: &str, mounts: &[SnapshotMount]) -> Result<PathBuf> {
    let safe: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let stamp = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let dir = root.join(format!("{safe}.{stamp}"));
    berth_core::store::create_dir_all(&dir)?;
    if let Err(e) = mounts::mount_all(mounts, &dir) {
        let _ = unmount(&dir);
        return Err(e);
    }
    Ok(dir)
}

/// Unmounts and removes `dir`, which must be one [`mount_snapshot`] made under `root`.
pub(crate) fn unmount_snapshot(root: &Path, dir: &Path) -> Result<PathBuf> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    if dir.parent() != Some(root.as_path()) {
        return Err(Error::invalid(
            format!("directory {}", dir.display()),
            "it was not made by `berth snapshot mount`",
        )
        .with_hint(format!("those live in {}", root.display())));
    }
    unmount(&dir)?;
    Ok(dir)
}

fn unmount(dir: &Path) -> Result<()> {
    mounts::unmount_all(dir)?;
    std::fs::remove_dir(dir).map_err(|e| Error::io(format!("removing {}", dir.display()), e))
}
