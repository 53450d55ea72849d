//! The host interfaces plugins import, one module each with its own `add_to_linker`.
//!
//! `log` and `config` are available to every plugin; the others only to plugins whose `grants`
//! list them (checked at load, see `plugin::problems`).

pub(crate) mod config;
pub(crate) mod containers;
pub(crate) mod log;
pub(crate) mod packages;
pub(crate) mod quotas;
pub(crate) mod snapshots;

use berth_core::{ContainerInfo, Error, Result, SnapshotInfo};
use wasmtime::component::{HasSelf, Linker};

use crate::state::HostState;

/// Where the granted host interfaces get their answers: the CLI implements it over its state
/// store and services. Calls happen on a plugin's clock, so keep them cheap. A host without
/// volumes or packages keeps the defaults, which refuse.
pub trait HostServices: Send + Sync {
    /// `containers`: every container, running or not.
    fn containers(&self) -> Vec<ContainerInfo>;
    /// `containers`: the container with this name or id (or unique id prefix), if any.
    fn container(&self, name_or_id: &str) -> Option<ContainerInfo>;

    /// `quotas`: every volume.
    fn volumes(&self) -> Result<Vec<berth_quota::Volume>> {
        Err(not_provided("quotas"))
    }
    /// `quotas`: creates volume `name` unless it exists; the volume either way.
    fn ensure_volume(&self, _name: &str, _limit: Option<u64>) -> Result<berth_quota::Volume> {
        Err(not_provided("quotas"))
    }
    /// `quotas`: removes volume `name`, refusing while a container mounts it.
    fn remove_volume(&self, _name: &str) -> Result<()> {
        Err(not_provided("quotas"))
    }

    /// `packages`: installs `name@version` unless it is installed; where it is and where it
    /// mounts.
    fn ensure_package(&self, _name: &str, _version: &str) -> Result<PackageMount> {
        Err(not_provided("packages"))
    }
    /// `packages`: every installed package.
    fn packages(&self) -> Result<Vec<PackageMount>> {
        Err(not_provided("packages"))
    }

    /// `snapshots`: every snapshot of `backend`.
    fn snapshots(&self, _backend: &str) -> Result<Vec<SnapshotInfo>> {
        Err(not_provided("snapshots"))
    }
    /// `snapshots`: one operation on `backend`'s snapshots.
    fn change_snapshot(&self, _backend: &str, _change: SnapshotChange) -> Result<()> {
        Err(not_provided("snapshots"))
    }
    /// `snapshots`: versions a container as `berth commit` does; the version's name.
    fn commit_container(&self, _reference: &str, _version: Option<&str>) -> Result<String> {
        Err(not_provided("snapshots"))
    }
}

/// A change a plugin asks of a backend's snapshots.
#[derive(Debug, Clone)]
pub enum SnapshotChange {
    Prepare { key: String, parent: Option<String> },
    Commit { name: String, key: String },
    Remove { key: String },
}

/// An installed package and the path a container sees it at.
#[derive(Debug, Clone)]
pub struct PackageMount {
    pub package: berth_packages::Installed,
    pub target: String,
}

fn not_provided(interface: &str) -> Error {
    Error::invalid(
        format!("host interface {interface}"),
        "this host does not provide it",
    )
}

/// The type-only `types` interface, which components import alongside the others.
pub(crate) fn add_types_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    crate::bindings::types::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}

impl crate::bindings::types::Host for HostState {}
