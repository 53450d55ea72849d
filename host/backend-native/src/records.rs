//! What the native backend remembers about each container, and where it keeps it.
//!
//! `create`, `start` (in the CLI process) and the supervisor (a separate process, possibly
//! outliving the CLI) share a container through these records and two file locks: the
//! per-container operation lock, taken around state changes, and the supervisor lock, held by
//! the supervisor for its whole life so that "wait" is "take the lock" and "is the supervisor
//! alive" is "try the lock". The kinds are the backend's own (`native-…`), distinct from the
//! CLI's `containers` records and locks.

use std::path::PathBuf;

use berth_core::{ContainerSpec, Durability, LockGuard, LockMode, Result, Store, Survives};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Store kind of the backend's container records (and its operation lock).
pub(crate) const CONTAINERS: &str = "native-containers";
/// Lock kind held by a container's supervisor while it lives.
pub(crate) const SUPERVISORS: &str = "native-supervisors";

/// Written once at create.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub spec: ContainerSpec,
    /// The image id the container was created from (the name may move later).
    pub image_id: String,
    /// Overlay lower dirs, top layer first.
    pub lower_dirs: Vec<PathBuf>,
    /// The committed snapshot it runs on since a `commit` or `rollback` (else its image's).
    #[serde(default)]
    pub base: Option<String>,
    pub created: DateTime<Utc>,
    /// A `commit` or `rollback` begun and not yet finished: written before the first step, so
    /// the next operation on the container finishes it (see `NativeBackend::finish_rebase`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebasing: Option<Rebase>,
}

/// What a `commit` or `rollback` is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rebase {
    /// The committed snapshot the container goes onto.
    pub version: String,
    /// `commit`: the upper dir becomes `version`; else (rollback) its changes are dropped.
    pub commit: bool,
    /// The upper dir's (device, inode), so it is recognised wherever a crash left it.
    pub upper: Option<(u64, u64)>,
}

/// Lifecycle phase as recorded; liveness of the supervisor refines it on read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Created,
    Running,
    Exited,
}

/// Rewritten by start and by the supervisor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateRecord {
    pub phase: Phase,
    pub pid: Option<u32>,
    pub started: Option<DateTime<Utc>>,
    pub finished: Option<DateTime<Utc>>,
    pub exit_code: Option<i32>,
    /// Why the last start failed, or how the process ended.
    #[serde(default)]
    pub detail: Option<String>,
}

impl StateRecord {
    pub fn created() -> Self {
        StateRecord {
            phase: Phase::Created,
            pid: None,
            started: None,
            finished: None,
            exit_code: None,
            detail: None,
        }
    }
}

/// Paths of one container.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    /// Mounts the container's rootfs (the image's layers `lower_dirs` under its upper dir)
    /// unless it is mounted.
    pub fn mount_rootfs(&self, lower_dirs: &[PathBuf]) -> Result<()> {
        crate::rootfs::mount_overlay(lower_dirs, &self.upper(), &self.work(), &self.rootfs())
    }

    pub fn new(store: &Store, id: &str) -> Layout {
        Layout {
            dir: store.object_dir(Durability::Persistent, CONTAINERS, id),
        }
    }
    pub fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("bundle").join("rootfs")
    }
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("log.jsonl")
    }
}

/// libcontainer's state root (volatile: it describes processes, which a reboot ends).
pub fn libcontainer_root(store: &Store) -> PathBuf {
    store.run_dir().join("native").join("libcontainer")
}

pub fn read_record(store: &Store, id: &str) -> Result<Option<ContainerRecord>> {
    store.read(Durability::Persistent, CONTAINERS, id, "config")
}

pub fn read_state(store: &Store, id: &str) -> Result<Option<StateRecord>> {
    store.read(Durability::Persistent, CONTAINERS, id, "state")
}

/// The state a container is created in survives a power loss; its later phases need not (see
/// [`Survives::ProcessKill`]): after a reboot nothing runs, whatever the record says.
pub fn write_state(store: &Store, id: &str, state: &StateRecord) -> Result<()> {
    let survives = if state.phase == Phase::Created && state.started.is_none() {
        Survives::PowerLoss
    } else {
        Survives::ProcessKill
    };
    store.write_surviving(
        survives,
        Durability::Persistent,
        CONTAINERS,
        id,
        "state",
        state,
    )
}

pub fn op_lock(store: &Store, id: &str) -> Result<LockGuard> {
    store.lock(CONTAINERS, id, LockMode::Exclusive)
}

/// `Some(guard)` when no supervisor holds the container (it is dead or never ran).
pub fn try_supervisor_lock(store: &Store, id: &str) -> Result<Option<LockGuard>> {
    store.try_lock(SUPERVISORS, id, LockMode::Exclusive)
}

pub fn supervisor_lock(store: &Store, id: &str) -> Result<LockGuard> {
    store.lock(SUPERVISORS, id, LockMode::Exclusive)
}

/// Ids of native containers created from `image_id`.
pub fn containers_using_image(store: &Store, image_id: &str) -> Result<Vec<String>> {
    let mut users = Vec::new();
    for id in store.list(Durability::Persistent, CONTAINERS)? {
        if let Some(record) = read_record(store, &id)?
            && record.image_id == image_id
        {
            users.push(id);
        }
    }
    Ok(users)
}
