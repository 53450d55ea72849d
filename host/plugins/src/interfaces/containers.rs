//! `berth:plugin/containers`: a read-only view of existing containers, for policies that depend
//! on what already runs (name clashes, spreading replicas). Granted with `grants = ["containers"]`.

use berth_core::ContainerInfo;
use wasmtime::component::{HasSelf, Linker};

use crate::bindings::{containers, types};
use crate::convert;
use crate::state::HostState;

/// Where the `containers` interface gets its answers; the CLI implements it over the state
/// store, tests over a fixed list. Calls happen on the plugin's clock, so keep them cheap.
pub trait ContainerDirectory: Send + Sync {
    /// Every container, running or not.
    fn list(&self) -> Vec<ContainerInfo>;
    /// The container with this name or id (or unique id prefix), if any.
    fn inspect(&self, name_or_id: &str) -> Option<ContainerInfo>;
}

impl containers::Host for HostState {
    fn list(&mut self) -> Vec<types::ContainerInfo> {
        self.containers
            .list()
            .iter()
            .map(convert::container_info)
            .collect()
    }

    fn inspect(&mut self, name_or_id: String) -> Option<types::ContainerInfo> {
        self.containers
            .inspect(&name_or_id)
            .as_ref()
            .map(convert::container_info)
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    containers::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}
