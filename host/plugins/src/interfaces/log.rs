//! `berth:plugin/log`: plugin messages go to the host's tracing output, tagged with the plugin.
//! Always available.
//!
//! What a plugin writes reaches the user's terminal, so it is bounded: each message is cut to
//! [`MAX_MESSAGE`] bytes and escaped (no terminal control reaches stderr), and a plugin may
//! write [`PER_CALL`] per call (its rate: one call inside its deadline cannot flood the log)
//! and [`PER_COMMAND`] in all while it is loaded. What is over budget is dropped, and counted:
//! the call ends with one warning saying how many messages were dropped. Messages the log
//! level filters out cost nothing.

use std::sync::Mutex;

use berth_core::text;
use tracing::Level;
use wasmtime::component::{HasData, Linker};

use crate::worlds::Abi;

mod v0_4 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        interfaces: "import berth:plugin/log@0.4.0;",
    });
}

/// 0.3.0's records are the current ones: only the package version differs.
mod v0_3 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.3.0",
        interfaces: "import berth:plugin/log@0.3.0;",
    });
}

/// 0.2.0's records are the current ones, by field: only the package version differs.
mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.2.0",
        interfaces: "import berth:plugin/log@0.2.0;",
    });
}

mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.1.0",
        interfaces: "import berth:plugin/log@0.1.0;",
    });
}

use v0_1::berth::plugin::log as wit0_1;
use v0_2::berth::plugin::log as wit0_2;
use v0_3::berth::plugin::log as wit0_3;
use v0_4::berth::plugin::log as wit;

/// Longest message kept (a marker says how long it was), before escaping: escaped, it is at
/// most four times as long.
pub(crate) const MAX_MESSAGE: usize = 1024;

/// What a plugin may log in one call: messages and bytes.
pub(crate) const PER_CALL: Allowance = Allowance {
    messages: 32,
    bytes: 8 << 10,
};

/// What a plugin may log in all while it is loaded (one `berth` command).
pub(crate) const PER_COMMAND: Allowance = Allowance {
    messages: 128,
    bytes: 32 << 10,
};

/// An amount of log output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Allowance {
    pub messages: usize,
    pub bytes: usize,
}

impl Allowance {
    fn admits(self, spent: Allowance, bytes: usize) -> bool {
        spent.messages < self.messages && spent.bytes + bytes <= self.bytes
    }
}

/// What one plugin has logged: in the call under way, in all, and what it dropped this call.
/// Shared by the plugin's stores (a failed call's store is dropped, its spending is not).
#[derive(Debug, Default)]
pub(crate) struct LogBudget {
    spent: Mutex<Spent>,
}

#[derive(Debug, Default)]
struct Spent {
    call: Allowance,
    total: Allowance,
    dropped: u64,
}

impl LogBudget {
    /// Whether a message could be admitted at all; `false` counts it as dropped, before any
    /// work is spent on it.
    fn has_room(&self) -> bool {
        let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        let room = PER_CALL.admits(spent.call, 1) && PER_COMMAND.admits(spent.total, 1);
        if !room {
            spent.dropped += 1;
        }
        room
    }

    /// Charges one message of `bytes`; `false`: over budget, drop it.
    fn charge(&self, bytes: usize) -> bool {
        let mut guard = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        let spent = &mut *guard;
        if PER_CALL.admits(spent.call, bytes) && PER_COMMAND.admits(spent.total, bytes) {
            for counted in [&mut spent.call, &mut spent.total] {
                counted.messages += 1;
                counted.bytes += bytes;
            }
            true
        } else {
            spent.dropped += 1;
            false
        }
    }

    pub(crate) fn start_call(&self) {
        let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        spent.call = Allowance::default();
        spent.dropped = 0;
    }

    /// Ends a call of `plugin`'s `function`: one warning if it had messages dropped.
    pub(crate) fn end_call(&self, plugin: &str, function: &str) -> u64 {
        let dropped =
            std::mem::take(&mut self.spent.lock().unwrap_or_else(|p| p.into_inner()).dropped);
        if dropped > 0 {
            tracing::warn!(
                plugin,
                function,
                "{dropped} log messages dropped: a plugin may log {} messages or {} KiB per call \
                 and {} messages or {} KiB per command",
                PER_CALL.messages,
                PER_CALL.bytes >> 10,
                PER_COMMAND.messages,
                PER_COMMAND.bytes >> 10
            );
        }
        dropped
    }
}

/// What `log` needs of a plugin's store: the name its messages are tagged with, and what it may
/// still log.
pub struct PluginLog<'a> {
    plugin: &'a str,
    budget: &'a LogBudget,
}

impl<'a> PluginLog<'a> {
    pub(crate) fn new(plugin: &'a str, budget: &'a LogBudget) -> PluginLog<'a> {
        PluginLog { plugin, budget }
    }
}

fn level(level: wit::Level) -> Level {
    match level {
        wit::Level::Trace => Level::TRACE,
        wit::Level::Debug => Level::DEBUG,
        wit::Level::Info => Level::INFO,
        wit::Level::Warn => Level::WARN,
        wit::Level::Error => Level::ERROR,
    }
}

/// Whether a message at `level` would be written at all (`enabled!` wants a constant level).
fn enabled(level: Level) -> bool {
    match level {
        Level::TRACE => tracing::enabled!(Level::TRACE),
        Level::DEBUG => tracing::enabled!(Level::DEBUG),
        Level::INFO => tracing::enabled!(Level::INFO),
        Level::WARN => tracing::enabled!(Level::WARN),
        _ => tracing::enabled!(Level::ERROR),
    }
}

impl wit::Host for PluginLog<'_> {
    fn log(&mut self, level: wit::Level, message: String) {
        let level = self::level(level);
        if !enabled(level) || !self.budget.has_room() {
            return;
        }
        let cut = text::truncated(&message, MAX_MESSAGE);
        let message = text::escaped(&cut);
        if !self.budget.charge(message.len()) {
            return;
        }
        let plugin = self.plugin;
        match level {
            Level::TRACE => tracing::trace!(plugin, "{message}"),
            Level::DEBUG => tracing::debug!(plugin, "{message}"),
            Level::INFO => tracing::info!(plugin, "{message}"),
            Level::WARN => tracing::warn!(plugin, "{message}"),
            _ => tracing::error!(plugin, "{message}"),
        }
    }
}

same_enum!(wit0_1::Level => [wit] { Trace, Debug, Info, Warn, Error });
same_enum!(wit0_2::Level => [wit] { Trace, Debug, Info, Warn, Error });
same_enum!(wit0_3::Level => [wit] { Trace, Debug, Info, Warn, Error });

impl wit0_3::Host for PluginLog<'_> {
    fn log(&mut self, level: wit0_3::Level, message: String) {
        wit::Host::log(self, level.into(), message)
    }
}

impl wit0_2::Host for PluginLog<'_> {
    fn log(&mut self, level: wit0_2::Level, message: String) {
        wit::Host::log(self, level.into(), message)
    }
}

impl wit0_1::Host for PluginLog<'_> {
    fn log(&mut self, level: wit0_1::Level, message: String) {
        wit::Host::log(self, level.into(), message)
    }
}

struct HasLog;

impl HasData for HasLog {
    type Data<'a> = PluginLog<'a>;
}

/// Defines `berth:plugin/log` at `abi`, answered from what `get` finds in the store.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    abi: Abi,
    get: fn(&mut T) -> PluginLog<'_>,
) -> wasmtime::Result<()> {
    match abi {
        Abi::V0_4 => wit::add_to_linker::<T, HasLog>(linker, get),
        Abi::V0_3 => wit0_3::add_to_linker::<T, HasLog>(linker, get),
        Abi::V0_2 => wit0_2::add_to_linker::<T, HasLog>(linker, get),
        Abi::V0_1 => wit0_1::add_to_linker::<T, HasLog>(linker, get),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_and_a_command_have_an_allowance_and_drops_are_counted() {
        let budget = LogBudget::default();
        budget.start_call();
        let admitted = (0..1000).filter(|_| budget.charge(10)).count();
        assert_eq!(admitted, PER_CALL.messages);
        assert_eq!(
            budget.end_call("p", "pre-create"),
            1000 - PER_CALL.messages as u64
        );
        // A new call has a new rate, but the total is shared.
        let mut admitted = 0;
        for _ in 0..100 {
            budget.start_call();
            admitted += (0..1000).filter(|_| budget.charge(10)).count();
            budget.end_call("p", "pre-create");
        }
        assert_eq!(admitted + PER_CALL.messages, PER_COMMAND.messages);
        // Bytes count too: one call fits eight full-size messages.
        let budget = LogBudget::default();
        budget.start_call();
        let admitted = (0..100).filter(|_| budget.charge(MAX_MESSAGE)).count();
        assert_eq!(admitted, PER_CALL.bytes / MAX_MESSAGE);
        assert!(!budget.has_room());
        assert_eq!(
            budget.end_call("p", "pre-create"),
            100 - admitted as u64 + 1
        );
    }
}
