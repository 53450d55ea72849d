//! `berth:plugin/log`: plugin messages go to the host's tracing output, tagged with the plugin.
//! Always available.

use wasmtime::component::{HasData, Linker};

mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../../wit",
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
use v0_2::berth::plugin::log as wit;

/// Longest message kept; a chatty plugin cannot flood the host's log with one call.
const MAX_MESSAGE: usize = 4096;

/// What `log` needs of a plugin's store: the name its messages are tagged with.
pub struct PluginLog<'a> {
    plugin: &'a str,
}

impl<'a> PluginLog<'a> {
    pub fn new(plugin: &'a str) -> PluginLog<'a> {
        PluginLog { plugin }
    }
}

impl wit::Host for PluginLog<'_> {
    fn log(&mut self, level: wit::Level, mut message: String) {
        if message.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        let plugin = self.plugin;
        match level {
            wit::Level::Trace => tracing::trace!(plugin, "{message}"),
            wit::Level::Debug => tracing::debug!(plugin, "{message}"),
            wit::Level::Info => tracing::info!(plugin, "{message}"),
            wit::Level::Warn => tracing::warn!(plugin, "{message}"),
            wit::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

impl wit0_1::Host for PluginLog<'_> {
    fn log(&mut self, level: wit0_1::Level, message: String) {
        let level = match level {
            wit0_1::Level::Trace => wit::Level::Trace,
            wit0_1::Level::Debug => wit::Level::Debug,
            wit0_1::Level::Info => wit::Level::Info,
            wit0_1::Level::Warn => wit::Level::Warn,
            wit0_1::Level::Error => wit::Level::Error,
        };
        wit::Host::log(self, level, message)
    }
}

struct HasLog;

impl HasData for HasLog {
    type Data<'a> = PluginLog<'a>;
}

/// Defines `berth:plugin/log` at every ABI version, answered from what `get` finds in the store.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> PluginLog<'_>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasLog>(linker, get)?;
    wit0_1::add_to_linker::<T, HasLog>(linker, get)
}
