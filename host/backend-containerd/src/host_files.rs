//! Host files a containerd container gets, as Memoh's service gives them: a resolv.conf and the
//! host's time zone.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use berth_core::{IoContext, Result};

/// systemd-resolved's list of the real upstream servers (its stub at 127.0.0.53 is useless
/// inside a container's own network namespace).
pub const RESOLVED_CONF: &str = "/run/systemd/resolve/resolv.conf";

const FALLBACK: &str = "nameserver 1.1.1.1\nnameserver 8.8.8.8\n";

/// The file bind-mounted at `/etc/resolv.conf`: `resolved` when it exists, else
/// `<state_dir>/resolv.conf` with public resolvers, mode 0644 (an existing one keeps its
/// content and is made 0644).
pub fn resolv_conf(resolved: &Path, state_dir: &Path) -> Result<PathBuf> {
    if resolved.is_file() {
        return Ok(resolved.to_owned());
    }
    let fallback = state_dir.join("resolv.conf");
    if !fallback.exists() {
        berth_core::store::atomic_write(&fallback, FALLBACK.as_bytes(), 0o644)?;
    }
    std::fs::set_permissions(&fallback, std::fs::Permissions::from_mode(0o644))
        .context(|| format!("making {} readable", fallback.display()))?;
    Ok(fallback)
}

/// `/etc/localtime` to bind read-only, when the host has one.
pub fn localtime() -> Option<PathBuf> {
    let path = Path::new("/etc/localtime");
    path.exists().then(|| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolved_wins_else_a_readable_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let resolved = dir.path().join("resolved.conf");
        let state = dir.path().join("state");
        let fallback = resolv_conf(&resolved, &state).unwrap();
        assert_eq!(fallback, state.join("resolv.conf"));
        assert_eq!(std::fs::read_to_string(&fallback).unwrap(), FALLBACK);
        assert_eq!(
            std::fs::metadata(&fallback).unwrap().permissions().mode() & 0o777,
            0o644
        );

        // An existing fallback keeps its content and becomes 0644.
        std::fs::write(&fallback, "nameserver 10.0.0.1\n").unwrap();
        std::fs::set_permissions(&fallback, std::fs::Permissions::from_mode(0o600)).unwrap();
        resolv_conf(&resolved, &state).unwrap();
        assert_eq!(
            std::fs::read_to_string(&fallback).unwrap(),
            "nameserver 10.0.0.1\n"
        );
        assert_eq!(
            std::fs::metadata(&fallback).unwrap().permissions().mode() & 0o777,
            0o644
        );

        std::fs::write(&resolved, "nameserver 9.9.9.9\n").unwrap();
        assert_eq!(resolv_conf(&resolved, &state).unwrap(), resolved);
    }
}
