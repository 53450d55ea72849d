//! `berth:plugin/config`: a plugin reads its own `settings` table, and nothing else.

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::config;
use crate::state::HostState;

impl config::Host for HostState {
    fn get(&mut self, key: String) -> Option<String> {
        self.plugin.setting(&key)
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    config::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}
