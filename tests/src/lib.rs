//! Shared helpers for berth's integration and end-to-end tests.
//!
//! Tests run the real `berth` binary and real Wasm plugins built from source; nothing here fakes
//! a backend.

pub mod archives;
pub mod bin;
pub mod containerd;
pub mod docker;
pub mod env;
pub mod logs;
pub mod plugins;
pub mod pty;
pub mod registry;
pub mod snapshots;
