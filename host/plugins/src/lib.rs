//! berth's WebAssembly plugin runtime.
//!
//! Policy — which names are valid, which backend runs a container, what happens around each
//! lifecycle step — lives in sandboxed Wasm components rather than in berth itself, so platform
//! teams can change it without rebuilding berth and a buggy policy cannot take the host down.
//! This crate compiles each component once (cached on disk), links only the host interfaces a
//! plugin is granted, runs every call under a deadline and a memory cap (a failed call discards
//! the plugin's instance), folds the plugins' answers into one decision per operation, and
//! appends every answer to the decision log (`events.jsonl`) so users can see why something
//! was denied or placed.
//!
//! Modules, dependencies pointing one way: `interfaces` (one per host interface: bindings,
//! service trait, `add_to_linker`) know nothing else here; `state` is a plugin's store, holding
//! what each interface needs; `linker` wires the two; `engine` (wasmtime, ticker, cache) builds
//! the linker; `worlds` are the exports a plugin is called through, at each ABI version;
//! `plugin` loads and runs one plugin; `answers` checks and bounds what a plugin hands back;
//! `host` folds all plugins into decisions.

mod answers;
pub mod budget;
mod check;
mod convert;
mod engine;
pub mod events;
mod hook;
mod host;
mod interfaces;
mod linker;
mod patch;
mod plugin;
mod state;
mod worlds;

pub use check::{CheckReport, check_component};
pub use engine::{pool_instances, start_engine};
pub use events::{Decision, Verdict};
pub use hook::{Function, Hook};
pub use host::{CacheStatus, PluginHost, PluginSummary};
pub use interfaces::{
    ContainerDirectory, HostServices, PackageMount, PackageService, SnapshotChange,
    SnapshotService, VolumeService,
};
pub use patch::Patch;
pub use worlds::Abi;
