//! `berth:plugin/log`: plugin messages go to the host's tracing output, tagged with the plugin.

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::log::{self, Level};
use crate::state::HostState;

/// Longest message kept; a chatty plugin cannot flood the host's log with one call.
const MAX_MESSAGE: usize = 4096;

impl log::Host for HostState {
    fn log(&mut self, level: Level, mut message: String) {
        if message.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        let plugin = self.plugin.name.as_str();
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    log::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}
