//! What a killed `berth` can leave in the native backend's own state, found and removed:
//! container directories berth has no record of (a create killed half-way), commits and
//! rollbacks left half done, rootfs mounts and cgroups of containers that no longer run,
//! libcontainer state nobody owns, staging directories of snapshots and imports, layers no
//! image uses, and lock files of containers that are gone.
//!
//! Each step takes the lock its operation takes and skips what is busy, so gc never races a
//! live operation; everything it does is what that operation would have done next.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use berth_core::{ContainerState, Durability, Result, mounts};

use crate::records::{self, Layout};
use crate::{NativeBackend, snapshots};

impl NativeBackend {
    pub(crate) fn collect_garbage_blocking(
        &self,
        known: &BTreeSet<String>,
        dry_run: bool,
    ) -> Result<Vec<String>> {
        let mut done = Vec::new();
        let ids = self
            .store
            .list(Durability::Persistent, records::CONTAINERS)?;
        for id in &ids {
            let Some(_op) =
                self.store
                    .try_lock(records::CONTAINERS, id, berth_core::LockMode::Exclusive)?
            else {
                continue; // an operation on it is running
            };
            if !known.contains(id) {
                done.push(format!("native container {id} (berth has no record of it)"));
                if !dry_run {
                    self.remove_orphan(id)?;
                }
                continue;
            }
            if let Ok(record) = self.record(id)
                && record.rebasing.is_some()
            {
                done.push(format!(
                    "container {id}: the commit or rollback that did not finish"
                ));
                if !dry_run {
                    self.recovered(id)?;
                }
            }
            let observed = self.observe(id).map(|(_, state, _)| state);
            // Processes of a start whose supervisor died before recording it: the start did
            // not happen, and what it began goes. (A container that ran and lost its
            // supervisor is `dead`, and the user's to stop.)
            // Only once the supervisor is gone: a live one is still starting the container
            // (it holds its lock from before the container's first process exists).
            let supervisor_gone = records::try_supervisor_lock(&self.store, id)?;
            if matches!(observed, Ok(ContainerState::Created))
                && supervisor_gone.is_some()
                && !self.orphans(id).is_empty()
            {
                done.push(format!(
                    "processes of container {id}'s start that did not finish"
                ));
                if !dry_run {
                    self.kill_orphans(id);
                    self.release_runtime(id)?;
                }
            }
            let rootfs = Layout::new(&self.store, id).rootfs();
            let idle =
                !matches!(observed, Ok(ContainerState::Running)) && self.orphans(id).is_empty();
            if idle && mounts::is_mount_point(&rootfs)? {
                done.push(format!("the rootfs mount of stopped container {id}"));
                if !dry_run {
                    self.release_runtime(id)?;
                }
            }
        }
        let live: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
        done.extend(self.stray_runtime_state(&live, dry_run)?);

        let snapshots = self.snapshots();
        for staged in snapshots.stale_staging() {
            done.push(format!("snapshot staging {}", staged.display()));
            if !dry_run {
                let _ = std::fs::remove_dir_all(&staged);
            }
        }
        let kept = snapshots::image_layers_in_use(&self.store)?;
        done.extend(self.images.collect_garbage(&kept, dry_run)?);

        if !dry_run {
            for kind in [records::CONTAINERS, records::SUPERVISORS] {
                for id in self
                    .store
                    .remove_stale_locks(kind, |id| live.contains(id))?
                {
                    tracing::debug!(id, kind, "removed a stale lock file");
                }
            }
        }
        Ok(done)
    }

    /// A container directory with no berth record: its processes, mount and cgroup go, then
    /// the directory (the container's record with it, if it got that far).
    fn remove_orphan(&self, id: &str) -> Result<()> {
        self.kill_orphans(id);
        self.release_runtime(id)?;
        self.store.remove(records::CONTAINERS, id)
    }

    /// libcontainer state of containers that have no directory any more.
    fn stray_runtime_state(&self, live: &BTreeSet<&str>, dry_run: bool) -> Result<Vec<String>> {
        let root = records::libcontainer_root(&self.store);
        let mut done = Vec::new();
        for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if live.contains(id.as_str()) {
                continue;
            }
            done.push(format!("runtime state of removed container {id}"));
            if !dry_run {
                if let Ok(mut container) = libcontainer::container::Container::load(entry.path()) {
                    let _ = container.delete(true);
                }
                let _ = std::fs::remove_dir_all(entry.path());
                for cgroup in berth_oci::cgroups::candidates(&self.cgroup_parent, &id) {
                    berth_oci::cgroups::remove(&cgroup);
                }
            }
        }
        // The attach sockets of containers whose supervisor was killed (it removes its own).
        done.extend(berth_core::attach::sweep_sockets(
            &self.store,
            "native",
            live.iter(),
            dry_run,
        ));
        Ok(done)
    }
}

impl snapshots::SnapshotStore {
    /// Staging directories (`.KEY.PID`) whose process is gone. A commit that died there has
    /// been recovered by its container already (which moves its files back out).
    pub fn stale_staging(&self) -> Vec<PathBuf> {
        self.staging_dirs()
            .into_iter()
            .filter(|dir| {
                let pid = dir
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.rsplit('.').next())
                    .and_then(|p| p.parse::<i32>().ok());
                pid.is_none_or(|pid| !Path::new(&format!("/proc/{pid}")).exists())
            })
            .collect()
    }
}
