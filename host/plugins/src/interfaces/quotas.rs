//! `berth:plugin/quotas`: named volumes with disk quotas, for hooks that give containers their
//! own storage. Granted with `grants = ["quotas"]`; errors reach the plugin as `err` text.

use berth_core::Result;
use wasmtime::component::{HasData, Linker};

use crate::worlds::Abi;

mod v0_4 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        interfaces: "import berth:plugin/quotas@0.4.0;",
    });
}

/// 0.3.0's records are the current ones: only the package version differs.
mod v0_3 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.3.0",
        interfaces: "import berth:plugin/quotas@0.3.0;",
    });
}

/// 0.2.0's records are the current ones, by field: only the package version differs.
mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.2.0",
        interfaces: "import berth:plugin/quotas@0.2.0;",
    });
}

mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.1.0",
        interfaces: "import berth:plugin/quotas@0.1.0;",
    });
}

use v0_1::berth::plugin::quotas as wit0_1;
use v0_2::berth::plugin::quotas as wit0_2;
use v0_3::berth::plugin::quotas as wit0_3;
use v0_4::berth::plugin::quotas as wit;

/// Where `quotas` gets its answers: the host's volumes.
pub trait VolumeService: Send + Sync {
    /// Every volume.
    fn volumes(&self) -> Result<Vec<berth_quota::Volume>>;
    /// Creates volume `name` unless it exists; the volume either way.
    fn ensure_volume(&self, name: &str, limit: Option<u64>) -> Result<berth_quota::Volume>;
    /// Removes volume `name`, refusing while a container mounts it.
    fn remove_volume(&self, name: &str) -> Result<()>;
}

/// What `quotas` needs of a plugin's store: the volumes, if the plugin is granted them.
pub struct Quotas<'a> {
    volumes: Option<&'a dyn VolumeService>,
}

impl<'a> Quotas<'a> {
    pub fn new(volumes: Option<&'a dyn VolumeService>) -> Quotas<'a> {
        Quotas { volumes }
    }

    fn volumes(&self) -> std::result::Result<&'a dyn VolumeService, String> {
        // Loading refuses a plugin that imports an interface it is not granted.
        self.volumes
            .ok_or_else(|| "berth:plugin/quotas is not granted to this plugin".to_string())
    }
}

fn volume(v: berth_quota::Volume) -> wit::Volume {
    wit::Volume {
        name: v.name,
        path: v.path.display().to_string(),
        limit_bytes: v.limit,
        used_bytes: v.used,
    }
}

impl wit::Host for Quotas<'_> {
    fn list(&mut self) -> std::result::Result<Vec<wit::Volume>, String> {
        let volumes = self.volumes()?.volumes().map_err(|e| e.to_string())?;
        Ok(volumes.into_iter().map(volume).collect())
    }

    fn get(&mut self, name: String) -> std::result::Result<Option<wit::Volume>, String> {
        let volumes = self.volumes()?.volumes().map_err(|e| e.to_string())?;
        Ok(volumes.into_iter().find(|v| v.name == name).map(volume))
    }

    fn ensure(
        &mut self,
        name: String,
        limit_bytes: Option<u64>,
    ) -> std::result::Result<wit::Volume, String> {
        self.volumes()?
            .ensure_volume(&name, limit_bytes)
            .map(volume)
            .map_err(|e| e.to_string())
    }

    fn remove(&mut self, name: String) -> std::result::Result<(), String> {
        self.volumes()?
            .remove_volume(&name)
            .map_err(|e| e.to_string())
    }
}

same_record!(wit::Volume => [wit0_1, wit0_2, wit0_3] { name, path, limit_bytes, used_bytes });

/// The older ABIs' interfaces answer what the current one does, converted.
macro_rules! older_hosts {
    ($($old:ident),+) => {$(
        impl $old::Host for Quotas<'_> {
            fn list(&mut self) -> std::result::Result<Vec<$old::Volume>, String> {
                Ok(wit::Host::list(self)?.into_iter().map(Into::into).collect())
            }

            fn get(&mut self, name: String) -> std::result::Result<Option<$old::Volume>, String> {
                Ok(wit::Host::get(self, name)?.map(Into::into))
            }

            fn ensure(
                &mut self,
                name: String,
                limit_bytes: Option<u64>,
            ) -> std::result::Result<$old::Volume, String> {
                wit::Host::ensure(self, name, limit_bytes).map(Into::into)
            }

            fn remove(&mut self, name: String) -> std::result::Result<(), String> {
                wit::Host::remove(self, name)
            }
        }
    )+};
}

older_hosts!(wit0_1, wit0_2, wit0_3);

struct HasQuotas;

impl HasData for HasQuotas {
    type Data<'a> = Quotas<'a>;
}

/// Defines `berth:plugin/quotas` at `abi`, answered from what `get` finds in the store.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    abi: Abi,
    get: fn(&mut T) -> Quotas<'_>,
) -> wasmtime::Result<()> {
    match abi {
        Abi::V0_4 => wit::add_to_linker::<T, HasQuotas>(linker, get),
        Abi::V0_3 => wit0_3::add_to_linker::<T, HasQuotas>(linker, get),
        Abi::V0_2 => wit0_2::add_to_linker::<T, HasQuotas>(linker, get),
        Abi::V0_1 => wit0_1::add_to_linker::<T, HasQuotas>(linker, get),
    }
}
