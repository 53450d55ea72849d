//! `berth:plugin/containers`: a read-only view of existing containers, for policies that depend
//! on what already runs (name clashes, spreading replicas). Granted with
//! `grants = ["containers"]`.
//!
//! 0.2.0 answers a failure to look as `err`; 0.1.0's functions cannot say "I don't know", so
//! there the failure traps the call (the plugin's `on-error` then decides) rather than passing
//! for "no containers".

use berth_core::{ContainerInfo, ContainerState, Result};
use wasmtime::component::{HasData, Linker};

use crate::worlds::Abi;

use super::types::wit as types;

mod v0_4 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        interfaces: "import berth:plugin/containers@0.4.0;",
        with: { "berth:plugin/types@0.4.0": crate::interfaces::types::wit },
    });
}

/// 0.3.0's records are the current ones: only the package version differs.
mod v0_3 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.3.0",
        interfaces: "import berth:plugin/containers@0.3.0;",
        with: { "berth:plugin/types@0.3.0": crate::interfaces::types::wit },
    });
}

/// 0.2.0's records are the current ones: only the package version differs.
mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.2.0",
        interfaces: "import berth:plugin/containers@0.2.0;",
        with: { "berth:plugin/types@0.2.0": crate::interfaces::types::wit0_2 },
    });
}

mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.1.0",
        interfaces: "import berth:plugin/containers@0.1.0;",
        with: { "berth:plugin/types@0.1.0": crate::interfaces::types::wit0_1 },
        imports: { default: trappable },
    });
}

use v0_1::berth::plugin::containers as wit0_1;
use v0_2::berth::plugin::containers as wit0_2;
use v0_3::berth::plugin::containers as wit0_3;
use v0_4::berth::plugin::containers as wit;

/// Where `containers` gets its answers: the host's container records and backends. Calls run on
/// the plugin's clock, so keep them cheap.
pub trait ContainerDirectory: Send + Sync {
    /// Every container, running or not.
    fn containers(&self) -> Result<Vec<ContainerInfo>>;
    /// The container with this name or id (or unique id prefix); `Ok(None)` when there is none.
    fn container(&self, name_or_id: &str) -> Result<Option<ContainerInfo>>;
}

/// What `containers` needs of a plugin's store: the directory, if the plugin is granted it.
pub struct Containers<'a> {
    directory: Option<&'a dyn ContainerDirectory>,
}

impl<'a> Containers<'a> {
    pub fn new(directory: Option<&'a dyn ContainerDirectory>) -> Containers<'a> {
        Containers { directory }
    }

    fn directory(&self) -> std::result::Result<&'a dyn ContainerDirectory, String> {
        // Loading refuses a plugin that imports an interface it is not granted, so this only
        // answers a plugin that got around that.
        self.directory
            .ok_or_else(|| "berth:plugin/containers is not granted to this plugin".to_string())
    }
}

pub(crate) fn container_info(c: &ContainerInfo) -> types::ContainerInfo {
    types::ContainerInfo {
        id: c.id.clone(),
        name: c.name.clone(),
        image: c.image.clone(),
        state: match c.state {
            ContainerState::Created => types::ContainerState::Created,
            ContainerState::Starting => types::ContainerState::Starting,
            // The 0.4 ABI has no word for it: it holds what it ran with, as a running one.
            ContainerState::Running | ContainerState::Restarting => types::ContainerState::Running,
            ContainerState::Stopped => types::ContainerState::Stopped,
            ContainerState::Dead => types::ContainerState::Dead,
        },
        backend: c.backend.clone(),
        labels: c
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        exit_code: c.exit_code,
    }
}

impl wit::Host for Containers<'_> {
    fn list(&mut self) -> std::result::Result<Vec<types::ContainerInfo>, String> {
        let found = self.directory()?.containers().map_err(|e| e.to_string())?;
        Ok(found.iter().map(container_info).collect())
    }

    fn inspect(
        &mut self,
        name_or_id: String,
    ) -> std::result::Result<Option<types::ContainerInfo>, String> {
        let found = self
            .directory()?
            .container(&name_or_id)
            .map_err(|e| e.to_string())?;
        Ok(found.as_ref().map(container_info))
    }
}

/// A 0.1.0 plugin asked something the host could not answer: the call fails instead.
fn unanswerable(function: &str, reason: String) -> wasmtime::Error {
    wasmtime::format_err!(
        "berth:plugin/containers.{function} failed: {reason} (a plugin built against \
         berth:plugin@0.1.0 cannot be told; rebuild it against 0.2.0 or later to handle the error)"
    )
}

/// 0.3.0 shares the current records.
impl wit0_3::Host for Containers<'_> {
    fn list(&mut self) -> std::result::Result<Vec<types::ContainerInfo>, String> {
        wit::Host::list(self)
    }

    fn inspect(
        &mut self,
        name_or_id: String,
    ) -> std::result::Result<Option<types::ContainerInfo>, String> {
        wit::Host::inspect(self, name_or_id)
    }
}

impl wit0_2::Host for Containers<'_> {
    fn list(&mut self) -> std::result::Result<Vec<super::types::wit0_2::ContainerInfo>, String> {
        Ok(wit::Host::list(self)?.into_iter().map(Into::into).collect())
    }

    fn inspect(
        &mut self,
        name_or_id: String,
    ) -> std::result::Result<Option<super::types::wit0_2::ContainerInfo>, String> {
        Ok(wit::Host::inspect(self, name_or_id)?.map(Into::into))
    }
}

impl wit0_1::Host for Containers<'_> {
    fn list(&mut self) -> wasmtime::Result<Vec<super::types::wit0_1::ContainerInfo>> {
        let found = wit::Host::list(self).map_err(|e| unanswerable("list", e))?;
        Ok(found.into_iter().map(Into::into).collect())
    }

    fn inspect(
        &mut self,
        name_or_id: String,
    ) -> wasmtime::Result<Option<super::types::wit0_1::ContainerInfo>> {
        let found = wit::Host::inspect(self, name_or_id).map_err(|e| unanswerable("inspect", e))?;
        Ok(found.map(Into::into))
    }
}

struct HasContainers;

impl HasData for HasContainers {
    type Data<'a> = Containers<'a>;
}

/// Defines `berth:plugin/containers` at `abi`, answered from what `get` finds in the store.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    abi: Abi,
    get: fn(&mut T) -> Containers<'_>,
) -> wasmtime::Result<()> {
    match abi {
        Abi::V0_4 => wit::add_to_linker::<T, HasContainers>(linker, get),
        Abi::V0_3 => wit0_3::add_to_linker::<T, HasContainers>(linker, get),
        Abi::V0_2 => wit0_2::add_to_linker::<T, HasContainers>(linker, get),
        Abi::V0_1 => wit0_1::add_to_linker::<T, HasContainers>(linker, get),
    }
}
