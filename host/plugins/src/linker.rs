//! The one linker every plugin is instantiated through: every berth host interface at every ABI
//! version, each answered from the part of the store it needs, and WASI (with the empty context
//! of [`HostState`]) in the groups the plugins loaded so far import.
//!
//! Linking everything grants nothing: what a plugin may import is decided from its imports and
//! grants before it is linked, and its store holds only the services it was granted. WASI is
//! linked by groups because all of it costs more than loading a plugin, while a plugin built
//! with wit-bindgen imports only `wasi:io` and `wasi:cli`.

use std::collections::BTreeSet;

use wasmtime::Engine;
use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sockets, sync};
use wasmtime_wasi::random::{WasiRandom, WasiRandomView};
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};

use crate::interfaces::config::Settings;
use crate::interfaces::containers::Containers;
use crate::interfaces::log::PluginLog;
use crate::interfaces::packages::Packages;
use crate::interfaces::quotas::Quotas;
use crate::interfaces::snapshots::Snapshots;
use crate::interfaces::{config, containers, log, packages, quotas, snapshots, types};
use crate::state::HostState;

/// A group of WASI interfaces, linked together the first time a plugin imports one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Wasi {
    Io,
    Cli,
    Clocks,
    Random,
    Filesystem,
    Sockets,
}

impl Wasi {
    /// Linked when the engine starts: every wit-bindgen guest imports them.
    pub const COMMON: [Wasi; 2] = [Wasi::Io, Wasi::Cli];

    /// The group of an import such as `wasi:cli/stderr@0.2.6`.
    pub fn of(import: &str) -> Option<Wasi> {
        let package = import.strip_prefix("wasi:")?.split('/').next()?;
        Some(match package {
            "io" => Wasi::Io,
            "cli" => Wasi::Cli,
            "clocks" => Wasi::Clocks,
            "random" => Wasi::Random,
            "filesystem" => Wasi::Filesystem,
            "sockets" => Wasi::Sockets,
            _ => return None,
        })
    }

    /// What `wasmtime_wasi::p2::add_to_linker_sync` adds for this group.
    fn add(self, l: &mut Linker<HostState>) -> wasmtime::Result<()> {
        type T = HostState;
        match self {
            Wasi::Io => {
                wasmtime_wasi_io::bindings::wasi::io::error::add_to_linker::<T, Table>(l, table)?;
                sync::io::poll::add_to_linker::<T, Table>(l, table)?;
                sync::io::streams::add_to_linker::<T, Table>(l, table)?;
            }
            Wasi::Cli => {
                cli::exit::add_to_linker::<T, WasiCli>(l, T::cli)?;
                cli::environment::add_to_linker::<T, WasiCli>(l, T::cli)?;
                cli::stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
                cli::stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
                cli::stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
                cli::terminal_input::add_to_linker::<T, WasiCli>(l, T::cli)?;
                cli::terminal_output::add_to_linker::<T, WasiCli>(l, T::cli)?;
                cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
                cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
                cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
            }
            Wasi::Clocks => {
                clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
                clocks::monotonic_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
            }
            Wasi::Random => {
                random::random::add_to_linker::<T, WasiRandom>(l, T::random)?;
                random::insecure::add_to_linker::<T, WasiRandom>(l, T::random)?;
                random::insecure_seed::add_to_linker::<T, WasiRandom>(l, T::random)?;
            }
            Wasi::Filesystem => {
                filesystem::preopens::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
                sync::filesystem::types::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
            }
            Wasi::Sockets => {
                let options = sockets::network::LinkOptions::default();
                sockets::tcp_create_socket::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
                sockets::instance_network::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
                sockets::network::add_to_linker::<T, WasiSockets>(l, &options, T::sockets)?;
                sockets::ip_name_lookup::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
                sync::sockets::tcp::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
                sync::sockets::udp::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
                sync::sockets::udp_create_socket::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
            }
        }
        Ok(())
    }
}

/// `wasi:io` is answered from the store's resource table alone.
struct Table;

impl HasData for Table {
    type Data<'a> = &'a mut ResourceTable;
}

fn table(state: &mut HostState) -> &mut ResourceTable {
    state.ctx().table
}

/// The linker and the WASI groups it holds so far.
pub(crate) struct Linked {
    pub linker: Linker<HostState>,
    wasi: BTreeSet<Wasi>,
}

impl Linked {
    /// Every berth interface and the [`Wasi::COMMON`] groups.
    pub fn new(engine: &Engine) -> wasmtime::Result<Linked> {
        let mut linker: Linker<HostState> = Linker::new(engine);
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
        let mut linked = Linked {
            linker,
            wasi: BTreeSet::new(),
        };
        linked.with_wasi(Wasi::COMMON)?;
        Ok(linked)
    }

    /// Adds the groups of `imports` it does not hold yet.
    pub fn with_wasi_of(&mut self, imports: &[String]) -> wasmtime::Result<&Linker<HostState>> {
        self.with_wasi(imports.iter().filter_map(|i| Wasi::of(i)))?;
        Ok(&self.linker)
    }

    fn with_wasi(&mut self, groups: impl IntoIterator<Item = Wasi>) -> wasmtime::Result<()> {
        for group in groups {
            if self.wasi.insert(group) {
                group.add(&mut self.linker)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_names_its_group_and_other_packages_none() {
        assert_eq!(Wasi::of("wasi:cli/stderr@0.2.6"), Some(Wasi::Cli));
        assert_eq!(
            Wasi::of("wasi:filesystem/types@0.2.0"),
            Some(Wasi::Filesystem)
        );
        assert_eq!(Wasi::of("wasi:sockets/tcp@0.2.0"), Some(Wasi::Sockets));
        assert_eq!(Wasi::of("berth:plugin/log@0.4.0"), None);
        assert_eq!(Wasi::of("wasi:http/types@0.2.0"), None);
    }
}
