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

mod bindings;
mod check;
mod convert;
mod engine;
pub mod events;
mod hook;
mod host;
mod interfaces;
mod patch;
mod plugin;
mod state;

pub use check::{CheckReport, check_component};
pub use engine::start_engine;
pub use events::{Decision, Verdict};
pub use hook::{Function, Hook};
pub use host::{CacheStatus, PluginHost, PluginSummary};
pub use interfaces::{HostServices, PackageMount, SnapshotChange};
pub use patch::Patch;
