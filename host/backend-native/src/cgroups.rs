//! A container's processes as its cgroup knows them: the one witness left when the
//! supervisor that watched the container was killed (its init lives on, reparented to init).

use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// The container's cgroup directories: one per v1 hierarchy, or the unified one.
pub fn dirs(parent: &str, id: &str) -> Vec<PathBuf> {
    let relative = Path::new(parent.trim_matches('/')).join(id);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .map(|hierarchy| hierarchy.path().join(&relative))
        .collect();
    dirs.push(Path::new(ROOT).join(&relative));
    dirs.retain(|d| d.join("cgroup.procs").is_file());
    dirs
}

/// Every process in the container's cgroup, in any hierarchy.
pub fn processes(parent: &str, id: &str) -> Vec<i32> {
    let mut pids: Vec<i32> = dirs(parent, id)
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

/// Removes the container's (empty) cgroup directories; busy or gone ones are left alone.
pub fn remove(parent: &str, id: &str) {
    for dir in dirs(parent, id) {
        let _ = std::fs::remove_dir(dir);
    }
}
