//! Named network namespaces, kept as `ip netns` keeps them: a file held by a bind mount of
//! the namespace, in a directory that is a shared mount of itself, so that a mount namespace
//! copied from the host (a container's) cannot pin a namespace berth has removed.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use berth_core::{Error, IoContext, Result};
use nix::mount::{MntFlags, MsFlags, mount, umount2};

/// Creates the namespace file `dir/name` with loopback up; an existing one is kept.
pub fn create(dir: &Path, name: &str) -> Result<PathBuf> {
    shared_dir(dir)?;
    let path = dir.join(name);
    if berth_core::mounts::is_mount_point(&path)? {
        return Ok(path);
    }
    std::fs::File::create(&path).context(|| format!("creating {}", path.display()))?;
    let target = path.clone();
    // unshare(CLONE_NEWNET) moves only the calling thread: a thread of its own, which then
    // ends, so no other thread of this process ever runs in the new namespace.
    let made = std::thread::spawn(move || -> std::result::Result<(), String> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("unshare: {e}"))?;
        let own = format!("/proc/self/task/{}/ns/net", nix::unistd::gettid());
        mount(
            Some(own.as_str()),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| format!("bind-mounting it: {e}"))?;
        loopback_up().map_err(|e| format!("bringing lo up: {e}"))
    })
    .join()
    .unwrap_or_else(|_| Err("the thread creating it panicked".into()));
    if let Err(reason) = made {
        let _ = remove(&path);
        return Err(Error::io(
            format!("creating network namespace {}", path.display()),
            std::io::Error::other(reason),
        ));
    }
    Ok(path)
}

/// Unmounts and removes a namespace file; a missing one is already gone.
pub fn remove(path: &Path) -> Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => {
            return Err(Error::io(
                format!("unmounting network namespace {}", path.display()),
                e.into(),
            ));
        }
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(
            format!("removing network namespace {}", path.display()),
            e,
        )),
        _ => Ok(()),
    }
}

/// Unmounts and removes `dir` once it holds no namespace, so an installation without running
/// containers leaves no mount behind. Callers hold the lock that serialises `create`.
pub fn release_dir(dir: &Path) -> Result<()> {
    let empty = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
    };
    if !empty {
        return Ok(());
    }
    while berth_core::mounts::is_mount_point(dir)? {
        umount2(dir, MntFlags::MNT_DETACH)
            .map_err(|e| Error::io(format!("unmounting {}", dir.display()), e.into()))?;
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(format!("removing {}", dir.display()), e))
        }
        _ => Ok(()),
    }
}

/// `dir`, bind-mounted on itself and made shared (what `ip netns add` does to /run/netns).
fn shared_dir(dir: &Path) -> Result<()> {
    berth_core::store::create_dir_all(dir)?;
    let fail = |e: nix::errno::Errno| Error::io(format!("preparing {}", dir.display()), e.into());
    if !berth_core::mounts::is_mount_point(dir)? {
        mount(
            Some(dir),
            dir,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(fail)?;
    }
    mount(
        None::<&str>,
        dir,
        None::<&str>,
        MsFlags::MS_SHARED | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(fail)
}

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
