//! Named network namespaces, held as namespace files (see `berth_core::namespaces`).

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use berth_core::{Error, Result, namespaces};

/// Creates the namespace file `dir/name` with loopback up; an existing one is kept.
pub fn create(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if berth_core::mounts::is_mount_point(&path)? {
        return Ok(path);
    }
    let (dir_owned, name_owned) = (dir.to_path_buf(), name.to_string());
    // unshare(CLONE_NEWNET) moves only the calling thread: a thread of its own, which then
    // ends, so no other thread of this process ever runs in the new namespace.
    let made = std::thread::spawn(move || -> std::result::Result<(), String> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("unshare: {e}"))?;
        let own = format!("/proc/self/task/{}/ns/net", nix::unistd::gettid());
        namespaces::bind(Path::new(&own), &dir_owned, &name_owned).map_err(|e| e.to_string())?;
        loopback_up().map_err(|e| format!("bringing lo up: {e}"))
    })
    .join()
    .unwrap_or_else(|_| Err("the thread creating it panicked".into()));
    if let Err(reason) = made {
        let _ = namespaces::remove(&path);
        return Err(Error::io(
            format!("creating network namespace {}", path.display()),
            std::io::Error::other(reason),
        ));
    }
    Ok(path)
}

pub use namespaces::{release_dir, remove};

/// `ip link set lo up` in the calling thread's namespace.
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: socket(2) with constant arguments; the fd is owned from here on.
    let socket = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if socket < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd nothing else owns.
    let socket = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(socket) };
    // SAFETY: ifreq is plain data; the ioctls read and write only within it.
    unsafe {
        let mut request: libc::ifreq = std::mem::zeroed();
        request.ifr_name[..2].copy_from_slice(&[b'l' as libc::c_char, b'o' as libc::c_char]);
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
