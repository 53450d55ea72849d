//! `berth:plugin/snapshots`: backends' snapshots and container versions, for hooks that keep
//! history (a post-stop hook that commits). Granted with `grants = ["snapshots"]`; errors reach
//! the plugin as `err` text.

use berth_core::{Result, SnapshotInfo, SnapshotKind};
use wasmtime::component::{HasData, Linker};

use crate::worlds::Abi;

mod v0_4 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        interfaces: "import berth:plugin/snapshots@0.4.0;",
    });
}

/// 0.3.0's records are the current ones: only the package version differs.
mod v0_3 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.3.0",
        interfaces: "import berth:plugin/snapshots@0.3.0;",
    });
}

/// 0.2.0's records are the current ones, by field: only the package version differs.
mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.2.0",
        interfaces: "import berth:plugin/snapshots@0.2.0;",
    });
}

mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.1.0",
        interfaces: "import berth:plugin/snapshots@0.1.0;",
    });
}

use v0_1::berth::plugin::snapshots as wit0_1;
use v0_2::berth::plugin::snapshots as wit0_2;
use v0_3::berth::plugin::snapshots as wit0_3;
use v0_4::berth::plugin::snapshots as wit;

/// Where `snapshots` gets its answers: the configured backends' snapshotters.
pub trait SnapshotService: Send + Sync {
    /// Every snapshot of `backend`.
    fn snapshots(&self, backend: &str) -> Result<Vec<SnapshotInfo>>;
    /// One operation on `backend`'s snapshots.
    fn change_snapshot(&self, backend: &str, change: SnapshotChange) -> Result<()>;
    /// Versions a container as `berth commit` does; the version's name.
    fn commit_container(&self, reference: &str, version: Option<&str>) -> Result<String>;
}

/// A change a plugin asks of a backend's snapshots.
#[derive(Debug, Clone)]
pub enum SnapshotChange {
    Prepare { key: String, parent: Option<String> },
    Commit { name: String, key: String },
    Remove { key: String },
}

/// What `snapshots` needs of a plugin's store: the snapshotters, if the plugin is granted them.
pub struct Snapshots<'a> {
    snapshots: Option<&'a dyn SnapshotService>,
}

impl<'a> Snapshots<'a> {
    pub fn new(snapshots: Option<&'a dyn SnapshotService>) -> Snapshots<'a> {
        Snapshots { snapshots }
    }

    fn snapshots(&self) -> std::result::Result<&'a dyn SnapshotService, String> {
        // Loading refuses a plugin that imports an interface it is not granted.
        self.snapshots
            .ok_or_else(|| "berth:plugin/snapshots is not granted to this plugin".to_string())
    }

    fn change(&self, backend: &str, change: SnapshotChange) -> std::result::Result<(), String> {
        self.snapshots()?
            .change_snapshot(backend, change)
            .map_err(|e| e.to_string())
    }
}

fn snapshot(s: SnapshotInfo) -> wit::Snapshot {
    wit::Snapshot {
        kind: match s.kind {
            SnapshotKind::View => wit::SnapshotKind::View,
            SnapshotKind::Active => wit::SnapshotKind::Active,
            SnapshotKind::Committed => wit::SnapshotKind::Committed,
        },
        name: s.name,
        parent: s.parent,
    }
}

impl wit::Host for Snapshots<'_> {
    fn list(&mut self, backend: String) -> std::result::Result<Vec<wit::Snapshot>, String> {
        let found = self
            .snapshots()?
            .snapshots(&backend)
            .map_err(|e| e.to_string())?;
        Ok(found.into_iter().map(snapshot).collect())
    }

    fn prepare(
        &mut self,
        backend: String,
        key: String,
        parent: Option<String>,
    ) -> std::result::Result<(), String> {
        self.change(&backend, SnapshotChange::Prepare { key, parent })
    }

    fn commit(
        &mut self,
        backend: String,
        name: String,
        key: String,
    ) -> std::result::Result<(), String> {
        self.change(&backend, SnapshotChange::Commit { name, key })
    }

    fn remove(&mut self, backend: String, key: String) -> std::result::Result<(), String> {
        self.change(&backend, SnapshotChange::Remove { key })
    }

    fn lineage(
        &mut self,
        backend: String,
        name: String,
    ) -> std::result::Result<Vec<String>, String> {
        let found = self
            .snapshots()?
            .snapshots(&backend)
            .map_err(|e| e.to_string())?;
        berth_core::snapshot::lineage(&name, &found).map_err(|e| e.to_string())
    }

    fn commit_container(
        &mut self,
        name_or_id: String,
        version: Option<String>,
    ) -> std::result::Result<String, String> {
        self.snapshots()?
            .commit_container(&name_or_id, version.as_deref())
            .map_err(|e| e.to_string())
    }
}

same_enum!(wit::SnapshotKind => [wit0_1, wit0_2, wit0_3] { View, Active, Committed });
same_record!(wit::Snapshot => [wit0_1, wit0_2, wit0_3] { name, parent, kind });

/// The older ABIs' interfaces answer what the current one does, converted.
macro_rules! older_hosts {
    ($($old:ident),+) => {$(
        impl $old::Host for Snapshots<'_> {
            fn list(&mut self, backend: String) -> std::result::Result<Vec<$old::Snapshot>, String> {
                Ok(wit::Host::list(self, backend)?
                    .into_iter()
                    .map(Into::into)
                    .collect())
            }

            fn prepare(
                &mut self,
                backend: String,
                key: String,
                parent: Option<String>,
            ) -> std::result::Result<(), String> {
                wit::Host::prepare(self, backend, key, parent)
            }

            fn commit(
                &mut self,
                backend: String,
                name: String,
                key: String,
            ) -> std::result::Result<(), String> {
                wit::Host::commit(self, backend, name, key)
            }

            fn remove(&mut self, backend: String, key: String) -> std::result::Result<(), String> {
                wit::Host::remove(self, backend, key)
            }

            fn lineage(
                &mut self,
                backend: String,
                name: String,
            ) -> std::result::Result<Vec<String>, String> {
                wit::Host::lineage(self, backend, name)
            }

            fn commit_container(
                &mut self,
                name_or_id: String,
                version: Option<String>,
            ) -> std::result::Result<String, String> {
                wit::Host::commit_container(self, name_or_id, version)
            }
        }
    )+};
}

older_hosts!(wit0_1, wit0_2, wit0_3);

struct HasSnapshots;

impl HasData for HasSnapshots {
    type Data<'a> = Snapshots<'a>;
}

/// Defines `berth:plugin/snapshots` at `abi`, answered from what `get` finds in the store.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    abi: Abi,
    get: fn(&mut T) -> Snapshots<'_>,
) -> wasmtime::Result<()> {
    match abi {
        Abi::V0_4 => wit::add_to_linker::<T, HasSnapshots>(linker, get),
        Abi::V0_3 => wit0_3::add_to_linker::<T, HasSnapshots>(linker, get),
        Abi::V0_2 => wit0_2::add_to_linker::<T, HasSnapshots>(linker, get),
        Abi::V0_1 => wit0_1::add_to_linker::<T, HasSnapshots>(linker, get),
    }
}
