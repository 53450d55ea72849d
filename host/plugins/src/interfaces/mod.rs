//! The host interfaces plugins import, one module each in the manner of wasmtime's wasi-config:
//! the module's own bindings (every ABI version), the trait the embedding host implements for
//! it (if it needs the host), the view of a plugin's store it answers from, and one
//! `add_to_linker` that defines the interface at a given version.
//!
//! Nothing here knows how plugins are loaded or run: each `add_to_linker` is generic over the
//! store's data and takes a function that finds its view there.
//!
//! `log` and `config` are available to every plugin; the others only to plugins whose `grants`
//! list them (checked at load), and only on a host that provides them ([`HostServices`]).

/// `From` a current record for the same record of older ABI versions, field for field:
/// `same_record!(wit::Volume => [wit0_1, wit0_2] { name, path })`. Each field converts with
/// `Into`, so a field whose type is itself such a record or enum converts too.
macro_rules! same_record {
    (@one $from:ident :: $ty:ident => $to:ident { $($field:ident),* $(,)? }) => {
        impl From<$from::$ty> for $to::$ty {
            fn from(r: $from::$ty) -> $to::$ty {
                $to::$ty { $($field: r.$field.into()),* }
            }
        }
    };
    ($from:ident :: $ty:ident => [$($to:ident),+] $fields:tt) => {
        $(same_record!(@one $from::$ty => $to $fields);)+
    };
}

/// `From` a current enum for the same enum of older ABI versions, case for case.
macro_rules! same_enum {
    (@one $from:ident :: $ty:ident => $to:ident { $($case:ident),* $(,)? }) => {
        impl From<$from::$ty> for $to::$ty {
            fn from(e: $from::$ty) -> $to::$ty {
                match e {
                    $($from::$ty::$case => $to::$ty::$case),*
                }
            }
        }
    };
    ($from:ident :: $ty:ident => [$($to:ident),+] $cases:tt) => {
        $(same_enum!(@one $from::$ty => $to $cases);)+
    };
}

pub(crate) mod config;
pub(crate) mod containers;
pub(crate) mod log;
pub(crate) mod packages;
pub(crate) mod quotas;
pub(crate) mod snapshots;
pub(crate) mod types;

use std::sync::Arc;

use berth_core::config::Grant;

pub use containers::ContainerDirectory;
pub use packages::{PackageMount, PackageService};
pub use quotas::VolumeService;
pub use snapshots::{SnapshotChange, SnapshotService};

/// What the embedding host provides behind each grantable interface; `None` where it has
/// nothing (a plugin importing that interface is then refused at load). The berth CLI provides
/// all four; a test or a tool may provide only what its plugins use.
#[derive(Clone, Default)]
pub struct HostServices {
    pub containers: Option<Arc<dyn ContainerDirectory>>,
    pub quotas: Option<Arc<dyn VolumeService>>,
    pub packages: Option<Arc<dyn PackageService>>,
    pub snapshots: Option<Arc<dyn SnapshotService>>,
}

impl HostServices {
    /// Every interface, answered by one implementation.
    pub fn all<S>(services: Arc<S>) -> HostServices
    where
        S: ContainerDirectory + VolumeService + PackageService + SnapshotService + 'static,
    {
        HostServices {
            containers: Some(services.clone()),
            quotas: Some(services.clone()),
            packages: Some(services.clone()),
            snapshots: Some(services),
        }
    }

    /// Whether this host has something behind `grant`'s interface.
    pub fn provides(&self, grant: Grant) -> bool {
        match grant {
            Grant::Containers => self.containers.is_some(),
            Grant::Quotas => self.quotas.is_some(),
            Grant::Packages => self.packages.is_some(),
            Grant::Snapshots => self.snapshots.is_some(),
        }
    }

    /// Only what `grants` lists: what one plugin's store holds.
    pub(crate) fn granted(&self, grants: &[Grant]) -> HostServices {
        let keep = |grant| grants.contains(&grant);
        HostServices {
            containers: self.containers.clone().filter(|_| keep(Grant::Containers)),
            quotas: self.quotas.clone().filter(|_| keep(Grant::Quotas)),
            packages: self.packages.clone().filter(|_| keep(Grant::Packages)),
            snapshots: self.snapshots.clone().filter(|_| keep(Grant::Snapshots)),
        }
    }
}
