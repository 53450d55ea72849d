//! Namespace files, kept as `ip netns` keeps them: a file held by a bind mount of the
//! namespace, in a directory that is a shared mount of itself, so that a mount namespace
//! copied from the host (a container's) cannot pin a namespace berth has removed. Network
//! namespaces of containers and the IPC and UTS namespaces of pods live this way, and so
//! outlive whatever process made them until they are removed.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::error::{Error, IoContext, Result};

/// Holds namespace `source` (a `/proc/PID/ns/KIND` path) as the file `dir/name`; an existing
/// one is kept.
pub fn bind(source: &Path, dir: &Path, name: &str) -> Result<PathBuf> {
    shared_dir(dir)?;
    let path = dir.join(name);
    if crate::mounts::is_mount_point(&path)? {
        return Ok(path);
    }
    std::fs::File::create(&path).context(|| format!("creating {}", path.display()))?;
    if let Err(e) = mount(
        Some(source),
        &path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    ) {
        let _ = std::fs::remove_file(&path);
        return Err(Error::io(
            format!("bind-mounting {} on {}", source.display(), path.display()),
            e.into(),
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
                format!("unmounting namespace file {}", path.display()),
                e.into(),
            ));
        }
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(
            format!("removing namespace file {}", path.display()),
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
    while crate::mounts::is_mount_point(dir)? {
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
pub fn shared_dir(dir: &Path) -> Result<()> {
    crate::store::create_dir_all(dir)?;
    let fail = |e: nix::errno::Errno| Error::io(format!("preparing {}", dir.display()), e.into());
    if !crate::mounts::is_mount_point(dir)? {
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

/// The namespace a sysctl belongs to, which a pod may set for itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysctlNamespace {
    Ipc,
    Net,
}

/// Where `key` is set: the IPC namespace (System V IPC and POSIX message queues), the network
/// namespace (`net.*`), or nowhere a pod owns (`None`: it would change the host).
pub fn sysctl_namespace(key: &str) -> Option<SysctlNamespace> {
    const IPC: [&str; 7] = [
        "kernel.shmmax",
        "kernel.shmall",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
    ];
    if IPC.contains(&key) || key == "kernel.sem" || key.starts_with("fs.mqueue.") {
        Some(SysctlNamespace::Ipc)
    } else if key.starts_with("net.") {
        Some(SysctlNamespace::Net)
    } else {
        None
    }
}

/// Checks every sysctl before anything is made: a namespaced key, a plain value.
pub fn check_sysctls(sysctls: &std::collections::BTreeMap<String, String>) -> Result<()> {
    for (key, value) in sysctls {
        let well_formed = !key.is_empty()
            && key
                .split('.')
                .all(|part| !part.is_empty() && !part.contains(['/', '\0']) && part != "..");
        if !well_formed || sysctl_namespace(key).is_none() {
            return Err(Error::invalid(
                format!("sysctl {key:?}"),
                "only IPC parameters (kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*) and net.* \
                 are the pod's own; any other would change the host",
            ));
        }
        if value.contains(['\n', '\0']) {
            return Err(Error::invalid(
                format!("sysctl {key}"),
                "its value holds a newline or NUL",
            ));
        }
    }
    Ok(())
}

/// Sets `sysctls` (checked with [`check_sysctls`]) in the namespaces `ipc` and `net` name, from
/// a thread of its own that joins them: `/proc/sys` shows the joining thread's namespaces.
pub fn set_sysctls(
    sysctls: &std::collections::BTreeMap<String, String>,
    ipc: &Path,
    net: Option<&Path>,
) -> Result<()> {
    use nix::sched::{CloneFlags, setns};
    if sysctls.is_empty() {
        return Ok(());
    }
    let open = |path: &Path| {
        std::fs::File::open(path).context(|| format!("opening namespace {}", path.display()))
    };
    let ipc = open(ipc)?;
    let net = net.map(open).transpose()?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                setns(&ipc, CloneFlags::CLONE_NEWIPC).map_err(|e| {
                    Error::io("joining the pod's IPC namespace", std::io::Error::from(e))
                })?;
                if let Some(net) = &net {
                    setns(net, CloneFlags::CLONE_NEWNET).map_err(|e| {
                        Error::io(
                            "joining the pod's network namespace",
                            std::io::Error::from(e),
                        )
                    })?;
                }
                for (key, value) in sysctls {
                    let needs_net = sysctl_namespace(key) == Some(SysctlNamespace::Net);
                    if needs_net && net.is_none() {
                        return Err(Error::invalid(
                            format!("sysctl {key}"),
                            "the pod shares the host's network",
                        ));
                    }
                    let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
                    std::fs::write(&path, value).map_err(|e| {
                        Error::invalid(
                            format!("sysctl {key}={value}"),
                            format!("the kernel refused it: {e}"),
                        )
                    })?;
                }
                Ok(())
            })
            .join()
            .unwrap_or_else(|_| Err(Error::invalid("sysctls", "setting them panicked")))
    })
}
