//! The one linker every plugin is instantiated through: WASI (with the empty context of
//! [`HostState`]) and every berth host interface at every ABI version, each answered from the
//! part of the store it needs.
//!
//! Linking everything grants nothing: what a plugin may import is decided from its imports and
//! grants before it is linked, and its store holds only the services it was granted.

use wasmtime::Engine;
use wasmtime::component::Linker;

use crate::interfaces::config::Settings;
use crate::interfaces::containers::Containers;
use crate::interfaces::log::PluginLog;
use crate::interfaces::packages::Packages;
use crate::interfaces::quotas::Quotas;
use crate::interfaces::snapshots::Snapshots;
use crate::interfaces::{config, containers, log, packages, quotas, snapshots, types};
use crate::state::HostState;

pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker: Linker<HostState> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    types::add_to_linker(&mut linker)?;
    log::add_to_linker(&mut linker, |s| PluginLog::new(&s.plugin.name, &s.log))?;
    config::add_to_linker(&mut linker, |s| Settings::new(&s.plugin))?;
    containers::add_to_linker(&mut linker, |s| {
        Containers::new(s.services.containers.as_deref())
    })?;
    quotas::add_to_linker(&mut linker, |s| Quotas::new(s.services.quotas.as_deref()))?;
    packages::add_to_linker(&mut linker, |s| {
        Packages::new(s.services.packages.as_deref())
    })?;
    snapshots::add_to_linker(&mut linker, |s| {
        Snapshots::new(s.services.snapshots.as_deref())
    })?;
    Ok(linker)
}
