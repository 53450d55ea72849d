//! `berth:plugin/config`: a plugin reads its own `settings` table, and nothing else. Always
//! available.

use berth_core::config::PluginConfig;
use wasmtime::component::{HasData, Linker};

use crate::worlds::Abi;

mod v0_4 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        interfaces: "import berth:plugin/config@0.4.0;",
    });
}

/// 0.3.0's records are the current ones: only the package version differs.
mod v0_3 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.3.0",
        interfaces: "import berth:plugin/config@0.3.0;",
    });
}

/// 0.2.0's records are the current ones: only the package version differs.
mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.2.0",
        interfaces: "import berth:plugin/config@0.2.0;",
    });
}

mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.1.0",
        interfaces: "import berth:plugin/config@0.1.0;",
    });
}

use v0_1::berth::plugin::config as wit0_1;
use v0_2::berth::plugin::config as wit0_2;
use v0_3::berth::plugin::config as wit0_3;
use v0_4::berth::plugin::config as wit;

/// What `config` needs of a plugin's store: the plugin's own entry, whose `settings` it reads.
pub struct Settings<'a> {
    plugin: &'a PluginConfig,
}

impl<'a> Settings<'a> {
    pub fn new(plugin: &'a PluginConfig) -> Settings<'a> {
        Settings { plugin }
    }
}

impl wit::Host for Settings<'_> {
    fn get(&mut self, key: String) -> Option<String> {
        self.plugin.setting(&key)
    }
}

impl wit0_3::Host for Settings<'_> {
    fn get(&mut self, key: String) -> Option<String> {
        wit::Host::get(self, key)
    }
}

impl wit0_2::Host for Settings<'_> {
    fn get(&mut self, key: String) -> Option<String> {
        wit::Host::get(self, key)
    }
}

impl wit0_1::Host for Settings<'_> {
    fn get(&mut self, key: String) -> Option<String> {
        wit::Host::get(self, key)
    }
}

struct HasSettings;

impl HasData for HasSettings {
    type Data<'a> = Settings<'a>;
}

/// Defines `berth:plugin/config` at `abi`, answered from what `get` finds in the store.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    abi: Abi,
    get: fn(&mut T) -> Settings<'_>,
) -> wasmtime::Result<()> {
    match abi {
        Abi::V0_4 => wit::add_to_linker::<T, HasSettings>(linker, get),
        Abi::V0_3 => wit0_3::add_to_linker::<T, HasSettings>(linker, get),
        Abi::V0_2 => wit0_2::add_to_linker::<T, HasSettings>(linker, get),
        Abi::V0_1 => wit0_1::add_to_linker::<T, HasSettings>(linker, get),
    }
}
