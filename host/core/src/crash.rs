//! Fault points for berth's crash-injection tests.
//!
//! Every multi-step operation names the instants between its steps with [`point`]. With
//! `BERTH_CRASH_AT=<name>` in its environment, a `berth` process (or a supervisor it spawned)
//! SIGKILLs itself on reaching the point of that name, exactly as an OOM kill or a power loss
//! would stop it there, so a test can prove that the next process finishes or undoes what was
//! left. Without the variable (always, outside tests) a point costs one cached lookup.

use std::sync::OnceLock;

/// The environment variable naming the point to die at.
pub const CRASH_AT: &str = "BERTH_CRASH_AT";

/// Dies here, by SIGKILL, if `BERTH_CRASH_AT` names this point.
pub fn point(name: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    if AT.get_or_init(|| std::env::var(CRASH_AT).ok()).as_deref() == Some(name) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
