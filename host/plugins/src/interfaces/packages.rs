//! `berth:plugin/packages`: read-only software packages, for hooks that decide what software a
//! container gets. Granted with `grants = ["packages"]`; errors reach the plugin as `err` text.

use wasmtime::component::{HasSelf, Linker};

use super::PackageMount;
use crate::bindings::packages::{self, Installed};
use crate::state::HostState;

fn package(m: PackageMount) -> Installed {
    Installed {
        name: m.package.name,
        version: m.package.version,
        id: m.package.id,
        path: m.package.path.display().to_string(),
        mount_target: m.target,
    }
}

impl packages::Host for HostState {
    fn ensure(&mut self, name: String, version: String) -> Result<Installed, String> {
        self.services
            .ensure_package(&name, &version)
            .map(package)
            .map_err(|e| e.to_string())
    }

    fn list(&mut self) -> Result<Vec<Installed>, String> {
        let installed = self.services.packages().map_err(|e| e.to_string())?;
        Ok(installed.into_iter().map(package).collect())
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    packages::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}
