//! Registries as the user reaches them: `berth login|logout`, and the [`RegistryAccess`] every
//! pull is made with (`[registries]`'s transport, the credentials `berth login` stored unless
//! the caller brings its own, as a kubelet does).

use berth_core::{Credentials, RegistryAccess, Result};
use berth_registry::credentials::{DockerConfig, Stored, registry_name};

use crate::Engine;

impl Engine {
    /// How `reference`'s registry is reached, and as whom.
    pub fn registry_access(
        &self,
        reference: &str,
        credentials: Option<Credentials>,
    ) -> Result<RegistryAccess> {
        let registry = berth_oci::Reference::parse(reference)?.registry;
        let mirror = self.config.registry_mirror(&registry).map(str::to_string);
        // Who to be, and how to connect, are the contacted host's.
        let host = mirror.as_deref().unwrap_or(&registry);
        let credentials = match credentials {
            Some(given) => Some(given),
            None => DockerConfig::locate().lookup(host)?,
        };
        Ok(RegistryAccess {
            transport: self.config.registry_transport(host),
            credentials,
            mirror,
            registry,
        })
    }

    /// Checks `username` and `password` with `registry` (as a reference names it, or as a URL),
    /// then keeps them where docker does; says where.
    pub async fn login(&self, registry: &str, username: &str, password: &str) -> Result<Stored> {
        let registry = registry_name(registry);
        let access = RegistryAccess {
            transport: self.config.registry_transport(registry),
            credentials: Some(Credentials::Password {
                username: username.to_string(),
                password: password.to_string(),
            }),
            registry: registry.to_string(),
            mirror: None,
        };
        berth_registry::login(&access).await?;
        DockerConfig::locate().store(registry, username, password)
    }

    /// Forgets the credentials kept for `registry`; false when there were none.
    pub fn logout(&self, registry: &str) -> Result<bool> {
        DockerConfig::locate().erase(registry_name(registry))
    }
}
