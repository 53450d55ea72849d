//! What the pipeline asks of policy, and where the answers come from.
//!
//! The engine only sees the [`Policy`] trait: the configured Wasm plugins implement it through
//! `berth_plugins::PluginHost`, and the engine's unit tests script it. Plugins are loaded on
//! first use, so a command that needs no policy never starts wasmtime, and start, stop and rm
//! load only the lifecycle-hook plugins (a broken name policy cannot block a removal). A
//! long-running server replaces the whole set at once ([`Policies::reload`]): calls in flight
//! finish with the set they started with.

use std::sync::{Arc, RwLock, Weak};

use berth_core::config::PluginWorld;
use berth_core::pod::{PodApp, PodSpec};
use berth_core::{BackendInfo, ContainerSpec, Result};
use berth_plugins::{Hook, PluginHost};

use crate::Engine;

/// The decisions the pipeline defers to policy. Every method has the "no opinion" answer a
/// host without plugins gives.
pub trait Policy: Send + Sync {
    /// A name for an unnamed object of `kind` (`container`, `pod`; a pod is described by
    /// its networking as a container spec); `None`: no opinion (the host's default is used).
    fn generate_name(&self, kind: &str, spec: &ContainerSpec) -> Result<Option<String>>;
    /// Refuses a name for an object of `kind`.
    fn validate_name(&self, kind: &str, name: &str) -> Result<()>;
    /// Whether placement needs every backend probed (a policy that places).
    fn places(&self) -> bool;
    /// The backend among `candidates`; `None`: no opinion.
    fn select_backend(
        &self,
        spec: &ContainerSpec,
        candidates: &[BackendInfo],
    ) -> Result<Option<String>>;
    /// A lifecycle step: at `pre-*` an error refuses it, and `pre-create` may patch `spec`.
    /// At `post-*` errors are recorded, and the caller ignores them.
    fn on_event(&self, hook: Hook, spec: &mut ContainerSpec, id: Option<&str>) -> Result<()>;
    /// A create that had passed `pre-create` failed: hooks may release what they provisioned.
    fn create_failed(&self, spec: &ContainerSpec, id: Option<&str>, reason: &str);
    /// A step of a pod's life, as `on_event` is of a container's: at `pre-*` an error refuses
    /// it; otherwise errors are recorded and ignored. `reason` is a `create-failed`'s.
    fn on_pod_event(
        &self,
        hook: Hook,
        pod: &PodSpec,
        apps: &[PodApp],
        id: Option<&str>,
        reason: Option<&str>,
    ) -> Result<()> {
        let _ = (hook, pod, apps, id, reason);
        Ok(())
    }
}

impl Policy for PluginHost {
    fn generate_name(&self, kind: &str, spec: &ContainerSpec) -> Result<Option<String>> {
        PluginHost::generate_name(self, kind, spec)
    }

    fn validate_name(&self, kind: &str, name: &str) -> Result<()> {
        PluginHost::validate_name(self, kind, name)
    }

    fn places(&self) -> bool {
        self.has_backend_policy()
    }

    fn select_backend(
        &self,
        spec: &ContainerSpec,
        candidates: &[BackendInfo],
    ) -> Result<Option<String>> {
        PluginHost::select_backend(self, spec, candidates)
    }

    fn on_event(&self, hook: Hook, spec: &mut ContainerSpec, id: Option<&str>) -> Result<()> {
        PluginHost::on_event(self, hook, spec, id)
    }

    fn create_failed(&self, spec: &ContainerSpec, id: Option<&str>, reason: &str) {
        PluginHost::create_failed(self, spec, id, reason)
    }

    fn on_pod_event(
        &self,
        hook: Hook,
        pod: &PodSpec,
        apps: &[PodApp],
        id: Option<&str>,
        reason: Option<&str>,
    ) -> Result<()> {
        PluginHost::on_pod_event(self, hook, pod, apps, id, reason)
    }
}

/// Where the engine's policy comes from.
pub(crate) enum Policies {
    /// The configured plugins, loaded on first use.
    Plugins {
        engine: Weak<Engine>,
        all: Slot,
        /// The lifecycle-hook plugins alone.
        hooks: Slot,
    },
    /// Given by the caller (the engine's tests; `None`: no policy at all).
    Given(Option<Arc<dyn Policy>>),
}

/// A plugin host, once loaded (`Some(None)`: loaded, and no plugin is configured).
#[derive(Default)]
pub(crate) struct Slot(RwLock<Option<Option<Arc<PluginHost>>>>);

impl Slot {
    fn get(&self) -> Option<Option<Arc<PluginHost>>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, host: Option<Option<Arc<PluginHost>>>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = host;
    }
}

impl Policies {
    pub fn plugins(engine: Weak<Engine>) -> Policies {
        Policies::Plugins {
            engine,
            all: Slot::default(),
            hooks: Slot::default(),
        }
    }

    /// Every plugin, for create: `None` when none is configured.
    pub fn all(&self) -> Result<Option<Arc<dyn Policy>>> {
        match self {
            Policies::Plugins { .. } => Ok(self.plugin_host()?.map(|p| p as Arc<dyn Policy>)),
            Policies::Given(policy) => Ok(policy.clone()),
        }
    }

    /// What start, stop and rm consult: the lifecycle-hook and pod-hook plugins (all of them
    /// once a create in this process has loaded them).
    pub fn hooks(&self) -> Result<Option<Arc<dyn Policy>>> {
        match self {
            Policies::Plugins { engine, all, hooks } => {
                if let Some(all) = all.get() {
                    return Ok(all.map(|p| p as Arc<dyn Policy>));
                }
                let loaded = load_once(engine, hooks, |config, services| {
                    let worlds = [PluginWorld::LifecycleHooks, PluginWorld::PodLifecycleHooks];
                    PluginHost::load_playing(config, &worlds, services)
                })?;
                Ok(loaded.map(|p| p as Arc<dyn Policy>))
            }
            Policies::Given(policy) => Ok(policy.clone()),
        }
    }

    /// The plugin host itself, for `plugin ls` and `plugin call`; `None` without plugins.
    pub fn plugin_host(&self) -> Result<Option<Arc<PluginHost>>> {
        match self {
            Policies::Plugins { engine, all, .. } => load_once(engine, all, PluginHost::load),
            Policies::Given(_) => Ok(None),
        }
    }

    /// Loads `config`'s plugins beside the current ones and, only once all of them loaded,
    /// makes them the engine's policy in one step. On failure the current set stays.
    pub fn reload(&self, config: &berth_core::Config) -> Result<Option<Arc<PluginHost>>> {
        let Policies::Plugins { engine, all, hooks } = self else {
            return Ok(None);
        };
        let services = crate::services::for_plugins(engine.clone());
        let host = PluginHost::load(config, services)?;
        let loaded = (!host.is_empty()).then(|| Arc::new(host));
        all.set(Some(loaded.clone()));
        hooks.set(None);
        Ok(loaded)
    }
}

/// `slot`'s plugin host as `load` makes it, or `None` if it loaded no plugin (and so started
/// no engine).
fn load_once(
    engine: &Weak<Engine>,
    slot: &Slot,
    load: impl FnOnce(&berth_core::Config, berth_plugins::HostServices) -> Result<PluginHost>,
) -> Result<Option<Arc<PluginHost>>> {
    if let Some(loaded) = slot.get() {
        return Ok(loaded);
    }
    let mut cell = slot.0.write().unwrap_or_else(|p| p.into_inner());
    if let Some(loaded) = &*cell {
        return Ok(loaded.clone());
    }
    let strong = engine.upgrade().ok_or_else(crate::services::shut_down)?;
    let services = crate::services::for_plugins(engine.clone());
    let host = load(&strong.config, services)?;
    let loaded = (!host.is_empty()).then(|| Arc::new(host));
    *cell = Some(loaded.clone());
    Ok(loaded)
}
