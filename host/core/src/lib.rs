//! berth's core: the vocabulary every other crate speaks.
//!
//! Domain types ([`ContainerSpec`], [`ContainerInfo`]), the one error enum, the
//! [`ContainerBackend`] trait every backend implements, `berth.toml` parsing and the state
//! store. No daemon client code lives here.

pub mod attach;
pub mod backend;
pub mod capability;
pub mod config;
pub mod crash;
pub mod error;
pub mod logs;
pub mod mounts;
pub mod namespaces;
pub mod pod;
pub mod registry;
pub mod restart;
pub mod snapshot;
pub mod store;
pub mod terminal;
pub mod text;
pub mod types;
pub mod validate;

pub use backend::{ContainerBackend, Listed, LogOptions};
pub use capability::{Capabilities, Capability};
pub use config::Config;
pub use error::{Error, ErrorKind, IoContext, Object, PluginFailure, Result};
pub use registry::{Credentials, RegistryAccess, Transport};
pub use snapshot::{SnapshotInfo, SnapshotKind, SnapshotMount};
pub use store::{Durability, Item, LockGuard, LockMode, LockToken, ObjectRef, Store, Survives};
pub use types::*;

/// The label daemon backends put on every container berth creates, valued with the
/// installation's [`Store::install_id`], so one installation lists only its own.
pub const STORE_LABEL: &str = "berth.store";

/// This machine's architecture as OCI images name it (`amd64`, `arm64`).
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
