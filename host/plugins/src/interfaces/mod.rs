//! The host interfaces plugins import, one module each with its own `add_to_linker`.
//!
//! `log` and `config` are linked for every plugin; the others only when the plugin's `grants`
//! list them, so an ungranted interface is not even reachable.

pub(crate) mod config;
pub(crate) mod containers;
pub(crate) mod log;

use wasmtime::component::{HasSelf, Linker};

use crate::state::HostState;

/// The type-only `types` interface, which components import alongside the others.
pub(crate) fn add_types_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    crate::bindings::types::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}

impl crate::bindings::types::Host for HostState {}
