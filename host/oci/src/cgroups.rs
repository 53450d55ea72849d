//! Containers' cgroups as the host sees them: the one witness left when the supervisor that
//! watched a container was killed (its init lives on, reparented to init), and pods' cgroups,
//! the directories with the pod's limits that its apps' cgroups are made under.

use std::path::{Path, PathBuf};

use berth_core::{Error, Limits, PodCgroup, Result};

const ROOT: &str = "/sys/fs/cgroup";

/// A cgroup's directories (`relative` below each hierarchy's root): one per v1 hierarchy, or
/// the unified one.
pub fn dirs(relative: &Path) -> Vec<PathBuf> {
    let relative = relative.strip_prefix("/").unwrap_or(relative);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .map(|hierarchy| hierarchy.path().join(relative))
        .collect();
    dirs.push(Path::new(ROOT).join(relative));
    dirs.retain(|d| d.join("cgroup.procs").is_file());
    dirs
}

/// Every process in the cgroup, in any hierarchy.
pub fn processes(relative: &Path) -> Vec<i32> {
    let mut pids: Vec<i32> = dirs(relative)
        .iter()
        .flat_map(|dir| {
            std::fs::read_to_string(dir.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<_>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// SIGKILLs every process in the cgroup until it is empty or `timeout` has passed (SIGKILL
/// cannot be ignored, but a fork between the read and the kill escapes one round).
pub fn kill_all(relative: &Path, timeout: std::time::Duration) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = processes(relative);
        if left.is_empty() || std::time::Instant::now() >= deadline {
            return;
        }
        for pid in left {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Removes the container's (empty) cgroup directories, and its pod's once its last app's is
/// gone (whoever removed the app's own: libcontainer does at delete); busy or gone ones are
/// left alone.
pub fn remove(relative: &Path) {
    let relative = relative.strip_prefix("/").unwrap_or(relative);
    let pod = relative.parent().filter(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("pod-"))
    });
    let hierarchies = std::fs::read_dir(ROOT).into_iter().flatten().flatten();
    for root in hierarchies.map(|h| h.path()).chain([PathBuf::from(ROOT)]) {
        let _ = std::fs::remove_dir(root.join(relative));
        if let Some(pod) = pod {
            let _ = std::fs::remove_dir(root.join(pod));
        }
    }
}

/// Where the cgroup of container `id` may be below `parent`: its own, or under a pod's (for
/// gc, which has no record to say which).
pub fn candidates(parent: &str, id: &str) -> Vec<PathBuf> {
    let parent = Path::new(parent.trim_matches('/'));
    let mut found = vec![parent.join(id)];
    for hierarchy in std::fs::read_dir(ROOT).into_iter().flatten().flatten() {
        for pod in std::fs::read_dir(hierarchy.path().join(parent))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = pod.file_name();
            let pod_cgroup = parent.join(&name).join(id);
            if name.to_string_lossy().starts_with("pod-")
                && pod.path().join(id).is_dir()
                && !found.contains(&pod_cgroup)
            {
                found.push(pod_cgroup);
            }
        }
    }
    found
}

/// Makes the pod's cgroup under `parent` with the pod's limits (again at every app start:
/// the pod's directory goes with its last app's). cgroup v1's memory, cpu and pids
/// controllers; on a unified (v2) host, pod limits are refused rather than dropped.
pub fn prepare_pod(parent: &str, pod: &PodCgroup) -> Result<()> {
    let relative = Path::new(parent.trim_matches('/')).join(&pod.name);
    write_limits(&relative, &pod.limits, true, "a pod")
}

/// Changes a running container's limits in place (`berth update`, the CRI's
/// UpdateContainerResources); limits not given stay. Memory+swap follows memory where the
/// host accounts swap, as at create.
pub fn update(relative: &Path, limits: &Limits) -> Result<()> {
    let relative = relative.strip_prefix("/").unwrap_or(relative);
    write_limits(relative, limits, false, "a container")
}

fn write_limits(relative: &Path, limits: &Limits, create: bool, whose: &str) -> Result<()> {
    let Limits {
        cpu_millis,
        memory_bytes,
        pids,
    } = *limits;
    let period = crate::spec::CPU_PERIOD_US;
    let wanted = [
        (
            "memory",
            memory_bytes.map(|b| vec![("memory.limit_in_bytes", b.to_string())]),
        ),
        (
            "cpu",
            cpu_millis.map(|m| {
                vec![
                    ("cpu.cfs_period_us", period.to_string()),
                    (
                        "cpu.cfs_quota_us",
                        m.saturating_mul(period / 1000).to_string(),
                    ),
                ]
            }),
        ),
        ("pids", pids.map(|p| vec![("pids.max", p.to_string())])),
    ];
    for (controller, files) in wanted {
        let Some(files) = files else { continue };
        let hierarchy = Path::new(ROOT).join(controller);
        if !hierarchy.join("cgroup.procs").is_file() {
            return Err(Error::NotSupported {
                operation: format!("a {controller} limit on {whose}"),
                backend: "this host".into(),
                hint: "berth writes these limits on cgroup v1's memory, cpu and pids hierarchies"
                    .into(),
            });
        }
        let dir = hierarchy.join(relative);
        if create {
            berth_core::store::create_dir_all(&dir)?;
        } else if !dir.is_dir() {
            return Err(Error::conflict(
                format!("the cgroup {}", dir.display()),
                "it is gone (the container is not running)",
            ));
        }
        for (file, value) in files {
            write_limit(&dir, file, &value)?;
        }
    }
    Ok(())
}

/// Writes one limit; a memory limit moves memory+swap with it, in the order the kernel takes
/// (memory+swap may never be below memory).
fn write_limit(dir: &Path, file: &str, value: &str) -> Result<()> {
    let write = |file: &str| {
        let path = dir.join(file);
        std::fs::write(&path, value)
            .map_err(|e| Error::io(format!("writing {value} to {}", path.display()), e))
    };
    let swap = "memory.memsw.limit_in_bytes";
    if file != "memory.limit_in_bytes" || !dir.join(swap).is_file() {
        return write(file);
    }
    let current: u64 = std::fs::read_to_string(dir.join(file))
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(u64::MAX);
    let new: u64 = value.parse().unwrap_or(u64::MAX);
    if new > current {
        write(swap)?;
        write(file)
    } else {
        write(file)?;
        write(swap)
    }
}
