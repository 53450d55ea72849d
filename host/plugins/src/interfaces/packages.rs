//! `berth:plugin/packages`: read-only software packages, for hooks that decide what software a
//! container gets. Granted with `grants = ["packages"]`; errors reach the plugin as `err` text.

use berth_core::Result;
use wasmtime::component::{HasData, Linker};

use crate::worlds::Abi;

mod v0_4 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        interfaces: "import berth:plugin/packages@0.4.0;",
    });
}

/// 0.3.0's records are the current ones: only the package version differs.
mod v0_3 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.3.0",
        interfaces: "import berth:plugin/packages@0.3.0;",
    });
}

/// 0.2.0's records are the current ones, by field: only the package version differs.
mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.2.0",
        interfaces: "import berth:plugin/packages@0.2.0;",
    });
}

mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.1.0",
        interfaces: "import berth:plugin/packages@0.1.0;",
    });
}

use v0_1::berth::plugin::packages as wit0_1;
use v0_2::berth::plugin::packages as wit0_2;
use v0_3::berth::plugin::packages as wit0_3;
use v0_4::berth::plugin::packages as wit;

/// Where `packages` gets its answers: the host's package store and repository.
pub trait PackageService: Send + Sync {
    /// Installs `name@version` unless it is installed; where it is and where it mounts.
    fn ensure_package(&self, name: &str, version: &str) -> Result<PackageMount>;
    /// Every installed package.
    fn packages(&self) -> Result<Vec<PackageMount>>;
}

/// An installed package and the path a container sees it at.
#[derive(Debug, Clone)]
pub struct PackageMount {
    pub package: berth_packages::Installed,
    pub target: String,
}

/// What `packages` needs of a plugin's store: the packages, if the plugin is granted them.
pub struct Packages<'a> {
    packages: Option<&'a dyn PackageService>,
}

impl<'a> Packages<'a> {
    pub fn new(packages: Option<&'a dyn PackageService>) -> Packages<'a> {
        Packages { packages }
    }

    fn packages(&self) -> std::result::Result<&'a dyn PackageService, String> {
        // Loading refuses a plugin that imports an interface it is not granted.
        self.packages
            .ok_or_else(|| "berth:plugin/packages is not granted to this plugin".to_string())
    }
}

fn installed(m: PackageMount) -> wit::Installed {
    wit::Installed {
        name: m.package.name,
        version: m.package.version,
        id: m.package.id,
        path: m.package.path.display().to_string(),
        mount_target: m.target,
    }
}

impl wit::Host for Packages<'_> {
    fn ensure(
        &mut self,
        name: String,
        version: String,
    ) -> std::result::Result<wit::Installed, String> {
        self.packages()?
            .ensure_package(&name, &version)
            .map(installed)
            .map_err(|e| e.to_string())
    }

    fn list(&mut self) -> std::result::Result<Vec<wit::Installed>, String> {
        let found = self.packages()?.packages().map_err(|e| e.to_string())?;
        Ok(found.into_iter().map(installed).collect())
    }
}

same_record!(wit::Installed => [wit0_1, wit0_2, wit0_3] { name, version, id, path, mount_target });

/// The older ABIs' interfaces answer what the current one does, converted.
macro_rules! older_hosts {
    ($($old:ident),+) => {$(
        impl $old::Host for Packages<'_> {
            fn ensure(
                &mut self,
                name: String,
                version: String,
            ) -> std::result::Result<$old::Installed, String> {
                wit::Host::ensure(self, name, version).map(Into::into)
            }

            fn list(&mut self) -> std::result::Result<Vec<$old::Installed>, String> {
                Ok(wit::Host::list(self)?.into_iter().map(Into::into).collect())
            }
        }
    )+};
}

older_hosts!(wit0_1, wit0_2, wit0_3);

struct HasPackages;

impl HasData for HasPackages {
    type Data<'a> = Packages<'a>;
}

/// Defines `berth:plugin/packages` at `abi`, answered from what `get` finds in the store.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    abi: Abi,
    get: fn(&mut T) -> Packages<'_>,
) -> wasmtime::Result<()> {
    match abi {
        Abi::V0_4 => wit::add_to_linker::<T, HasPackages>(linker, get),
        Abi::V0_3 => wit0_3::add_to_linker::<T, HasPackages>(linker, get),
        Abi::V0_2 => wit0_2::add_to_linker::<T, HasPackages>(linker, get),
        Abi::V0_1 => wit0_1::add_to_linker::<T, HasPackages>(linker, get),
    }
}
