//! `berth:plugin/snapshots`: backends' snapshots and container versions, for hooks that keep
//! history (a post-stop hook that commits). Granted with `grants = ["snapshots"]`; errors reach
//! the plugin as `err` text.

use berth_core::SnapshotKind;
use wasmtime::component::{HasSelf, Linker};

use super::SnapshotChange;
use crate::bindings::snapshots::{self, Snapshot};
use crate::state::HostState;

fn kind(kind: SnapshotKind) -> snapshots::SnapshotKind {
    match kind {
        SnapshotKind::View => snapshots::SnapshotKind::View,
        SnapshotKind::Active => snapshots::SnapshotKind::Active,
        SnapshotKind::Committed => snapshots::SnapshotKind::Committed,
    }
}

impl HostState {
    fn change(&self, backend: &str, change: SnapshotChange) -> Result<(), String> {
        self.services
            .change_snapshot(backend, change)
            .map_err(|e| e.to_string())
    }
}

impl snapshots::Host for HostState {
    fn list(&mut self, backend: String) -> Result<Vec<Snapshot>, String> {
        let found = self
            .services
            .snapshots(&backend)
            .map_err(|e| e.to_string())?;
        Ok(found
            .into_iter()
            .map(|s| Snapshot {
                kind: kind(s.kind),
                name: s.name,
                parent: s.parent,
            })
            .collect())
    }

    fn prepare(
        &mut self,
        backend: String,
        key: String,
        parent: Option<String>,
    ) -> Result<(), String> {
        self.change(&backend, SnapshotChange::Prepare { key, parent })
    }

    fn commit(&mut self, backend: String, name: String, key: String) -> Result<(), String> {
        self.change(&backend, SnapshotChange::Commit { name, key })
    }

    fn remove(&mut self, backend: String, key: String) -> Result<(), String> {
        self.change(&backend, SnapshotChange::Remove { key })
    }

    fn lineage(&mut self, backend: String, name: String) -> Result<Vec<String>, String> {
        let found = self
            .services
            .snapshots(&backend)
            .map_err(|e| e.to_string())?;
        berth_core::snapshot::lineage(&name, &found).map_err(|e| e.to_string())
    }

    fn commit_container(
        &mut self,
        name_or_id: String,
        version: Option<String>,
    ) -> Result<String, String> {
        self.services
            .commit_container(&name_or_id, version.as_deref())
            .map_err(|e| e.to_string())
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    snapshots::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}
