//! The one linker every plugin is instantiated through: the berth host interfaces and the WASI
//! groups (with the empty context of [`HostState`]) that the plugins loaded so far import, each
//! answered from the part of the store it needs.
//!
//! Linking grants nothing: what a plugin may import is decided from its imports and grants
//! before it is linked, and its store holds only the services it was granted. Each interface is
//! linked at the version a plugin imports, and WASI by groups, the first time a plugin needs
//! it: linking every interface at every version and all of WASI cost more than loading three
//! plugins, while a plugin built with wit-bindgen imports a few interfaces at one version and
//! only `wasi:io` and `wasi:cli`.

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
use crate::plugin::berth_import;
use crate::state::HostState;
use crate::worlds::Abi;
use berth_core::config::Grant;

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

/// A berth interface plugins import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interface {
    Types,
    Log,
    Config,
    /// One a plugin must be granted.
    Granted(Grant),
}

impl Interface {
    fn of(name: &str) -> Option<Interface> {
        Some(match name {
            "types" => Interface::Types,
            "log" => Interface::Log,
            "config" => Interface::Config,
            other => Interface::Granted(Grant::from_interface(other)?),
        })
    }

    fn add(self, l: &mut Linker<HostState>, abi: Abi) -> wasmtime::Result<()> {
        match self {
            Interface::Types => types::add_to_linker(l, abi),
            Interface::Log => {
                log::add_to_linker(l, abi, |s| PluginLog::new(&s.plugin.name, &s.log))
            }
            Interface::Config => config::add_to_linker(l, abi, |s| Settings::new(&s.plugin)),
            Interface::Granted(Grant::Containers) => containers::add_to_linker(l, abi, |s| {
                Containers::new(s.services.containers.as_deref())
            }),
            Interface::Granted(Grant::Quotas) => {
                quotas::add_to_linker(l, abi, |s| Quotas::new(s.services.quotas.as_deref()))
            }
            Interface::Granted(Grant::Packages) => {
                packages::add_to_linker(l, abi, |s| Packages::new(s.services.packages.as_deref()))
            }
            Interface::Granted(Grant::Snapshots) => snapshots::add_to_linker(l, abi, |s| {
                Snapshots::new(s.services.snapshots.as_deref())
            }),
        }
    }
}

/// What the linker may hold, each added as a whole the first time a plugin imports part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Linkable {
    Wasi(Wasi),
    Berth(Interface, Abi),
}

impl Linkable {
    /// What an import such as `wasi:cli/stderr@0.2.6` or `berth:plugin/log@0.4.0` needs linked;
    /// `None` for one nothing here defines (the link then names it).
    pub fn of(import: &str) -> Option<Linkable> {
        if let Some((name, version)) = berth_import(import) {
            return Some(Linkable::Berth(Interface::of(name)?, Abi::of(version)?));
        }
        Wasi::of(import).map(Linkable::Wasi)
    }

    /// What every plugin built with wit-bindgen against this berth's `wit/` imports.
    pub const COMMON: [Linkable; 5] = [
        Linkable::Wasi(Wasi::Io),
        Linkable::Wasi(Wasi::Cli),
        Linkable::Berth(Interface::Types, Abi::CURRENT),
        Linkable::Berth(Interface::Log, Abi::CURRENT),
        Linkable::Berth(Interface::Config, Abi::CURRENT),
    ];
}

/// The linker and what it holds so far.
pub(crate) struct Linked {
    pub linker: Linker<HostState>,
    holds: Vec<Linkable>,
}

impl Linked {
    /// A linker holding [`Linkable::COMMON`].
    pub fn new(engine: &Engine) -> wasmtime::Result<Linked> {
        let mut linked = Linked {
            linker: Linker::new(engine),
            holds: Vec::new(),
        };
        linked.with(Linkable::COMMON)?;
        Ok(linked)
    }

    /// Adds what `imports` need that it does not hold yet.
    pub fn with_imports(&mut self, imports: &[String]) -> wasmtime::Result<&Linker<HostState>> {
        self.with(imports.iter().filter_map(|i| Linkable::of(i)))?;
        Ok(&self.linker)
    }

    fn with(&mut self, needed: impl IntoIterator<Item = Linkable>) -> wasmtime::Result<()> {
        for linkable in needed {
            if self.holds.contains(&linkable) {
                continue;
            }
            match linkable {
                Linkable::Wasi(group) => group.add(&mut self.linker)?,
                Linkable::Berth(interface, abi) => interface.add(&mut self.linker, abi)?,
            }
            self.holds.push(linkable);
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

    #[test]
    fn a_berth_import_names_its_interface_and_version() {
        assert_eq!(
            Linkable::of("berth:plugin/log@0.4.0"),
            Some(Linkable::Berth(Interface::Log, Abi::V0_4))
        );
        assert_eq!(
            Linkable::of("berth:plugin/snapshots@0.2.0"),
            Some(Linkable::Berth(
                Interface::Granted(Grant::Snapshots),
                Abi::V0_2
            ))
        );
        assert_eq!(
            Linkable::of("wasi:io/streams@0.2.6"),
            Some(Linkable::Wasi(Wasi::Io))
        );
        // Unknown interfaces and versions are left for the link to name.
        assert_eq!(Linkable::of("berth:plugin/registry@0.4.0"), None);
        assert_eq!(Linkable::of("berth:plugin/log@0.9.0"), None);
    }
}
