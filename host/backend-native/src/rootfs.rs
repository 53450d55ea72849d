//! A container's root filesystem: the image's layers under an overlayfs with a per-container
//! upper dir.
//!
//! The mount lives in the host mount namespace at `<bundle>/rootfs` so libcontainer can pivot
//! into it. It is made at start (again if a reboot or an earlier stop removed it) and taken down
//! when the supervisor finishes and at remove; the upper dir keeps the container's changes in
//! between.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_core::store::create_dir_all;
use berth_core::{Error, IoContext, Result};
use nix::mount::{MntFlags, MsFlags, mount, umount2};

/// The mount options, or an error when they do not fit in the kernel's one-page limit.
pub fn overlay_options(lower_top_first: &[PathBuf], upper: &Path, work: &Path) -> Result<String> {
    let lower: Vec<String> = lower_top_first
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    if options.len() >= 4000 {
        return Err(Error::invalid(
            "overlay mount options",
            format!(
                "{} layers make the option string too long for the kernel",
                lower.len()
            ),
        )
        .with_hint("use a shorter state-dir path or an image with fewer layers"));
    }
    Ok(options)
}

/// Whether something is mounted at `target` (its device differs from its parent's).
pub fn is_mounted(target: &Path) -> bool {
    let (Ok(here), Some(Ok(parent))) = (
        std::fs::metadata(target),
        target.parent().map(std::fs::metadata),
    ) else {
        return false;
    };
    here.dev() != parent.dev()
}

/// Mounts the overlay unless it is already there.
pub fn mount_overlay(
    lower_top_first: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<()> {
    for dir in [upper, work, target] {
        create_dir_all(dir)?;
    }
    // The upper dir's root is the container's `/`: 0755 as on docker, or an image whose USER is
    // not root cannot reach its own /bin (berth's directories are 0750).
    std::fs::set_permissions(upper, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .context(|| format!("making {} the container's root", upper.display()))?;
    if is_mounted(target) {
        return Ok(());
    }
    for lower in lower_top_first {
        if !lower.is_dir() {
            return Err(Error::Corrupt {
                what: "image layer".into(),
                path: lower.clone(),
                message: "the layer directory is missing".into(),
                hint: "re-import the image, then re-create the container".into(),
            });
        }
    }
    let options = overlay_options(lower_top_first, upper, work)?;
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .context(|| {
        format!(
            "mounting the overlay root filesystem at {}",
            target.display()
        )
    })
}

/// Unmounts the overlay if mounted; a busy mount is detached lazily.
pub fn unmount(target: &Path) -> Result<()> {
    if !is_mounted(target) {
        return Ok(());
    }
    match umount2(target, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EBUSY) => umount2(target, MntFlags::MNT_DETACH)
            .context(|| format!("unmounting {}", target.display())),
        Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(Error::io(
            format!("unmounting {}", target.display()),
            std::io::Error::from(e),
        )),
    }
}

/// Whether overlayfs is available on this kernel.
pub fn overlay_supported() -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .is_ok_and(|s| s.lines().any(|l| l.trim_end().ends_with("overlay")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_list_layers_top_first() {
        let options = overlay_options(
            &["/l/top".into(), "/l/base".into()],
            Path::new("/c/upper"),
            Path::new("/c/work"),
        )
        .unwrap();
        assert_eq!(
            options,
            "lowerdir=/l/top:/l/base,upperdir=/c/upper,workdir=/c/work"
        );
        let many: Vec<PathBuf> = (0..200)
            .map(|i| format!("/very/long/path/{i:040}").into())
            .collect();
        assert!(overlay_options(&many, Path::new("/u"), Path::new("/w")).is_err());
    }
}
