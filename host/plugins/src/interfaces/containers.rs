//! `berth:plugin/containers`: a read-only view of existing containers, for policies that depend
//! on what already runs (name clashes, spreading replicas). Granted with `grants = ["containers"]`.

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::{containers, types};
use crate::convert;
use crate::state::HostState;

impl containers::Host for HostState {
    fn list(&mut self) -> Vec<types::ContainerInfo> {
        self.services
            .containers()
            .iter()
            .map(convert::container_info)
            .collect()
    }

    fn inspect(&mut self, name_or_id: String) -> Option<types::ContainerInfo> {
        self.services
            .container(&name_or_id)
            .as_ref()
            .map(convert::container_info)
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    containers::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}
