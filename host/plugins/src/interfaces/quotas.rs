//! `berth:plugin/quotas`: named volumes with disk quotas, for hooks that give containers their
//! own storage. Granted with `grants = ["quotas"]`; errors reach the plugin as `err` text.

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::quotas::{self, Volume};
use crate::state::HostState;

fn volume(v: berth_quota::Volume) -> Volume {
    Volume {
        name: v.name,
        path: v.path.display().to_string(),
        limit_bytes: v.limit,
        used_bytes: v.used,
    }
}

impl quotas::Host for HostState {
    fn list(&mut self) -> Result<Vec<Volume>, String> {
        let volumes = self.services.volumes().map_err(|e| e.to_string())?;
        Ok(volumes.into_iter().map(volume).collect())
    }

    fn get(&mut self, name: String) -> Result<Option<Volume>, String> {
        let volumes = self.services.volumes().map_err(|e| e.to_string())?;
        Ok(volumes.into_iter().find(|v| v.name == name).map(volume))
    }

    fn ensure(&mut self, name: String, limit_bytes: Option<u64>) -> Result<Volume, String> {
        self.services
            .ensure_volume(&name, limit_bytes)
            .map(volume)
            .map_err(|e| e.to_string())
    }

    fn remove(&mut self, name: String) -> Result<(), String> {
        self.services
            .remove_volume(&name)
            .map_err(|e| e.to_string())
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    quotas::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}
