//! The backend registry: the configured backends by name, the one place a backend `type`
//! becomes an implementation, and their health as placement sees it.

use std::sync::Arc;

use berth_core::config::{BackendConfig, Config};
use berth_core::{BackendInfo, Capabilities, Capability, ContainerBackend, Error, Result, Store};
use indexmap::IndexMap;

/// One configured backend.
struct Entry {
    backend: Arc<dyn ContainerBackend>,
    /// The implementation, as `type` names it in berth.toml.
    kind: &'static str,
    /// What it can honour: its own capabilities, plus what the engine supplies for it.
    capabilities: Capabilities,
    /// The engine keeps its containers' restart policies (the backend does not).
    engine_restarts: bool,
}

impl Entry {
    fn new(backend: Arc<dyn ContainerBackend>, kind: &'static str) -> Entry {
        let own = backend.capabilities();
        Entry {
            engine_restarts: !own.contains(Capability::RestartPolicy),
            // Restarts need only `wait` and `start`, which every backend has.
            capabilities: own.with(Capability::RestartPolicy),
            backend,
            kind,
        }
    }
}

/// The configured backends, in config order (the order placement falls back in).
pub struct Backends {
    entries: IndexMap<String, Entry>,
    /// Where the configuration came from, for errors about it.
    source: String,
}

impl Backends {
    /// Builds every `[backends.<name>]` of `config`.
    pub fn from_config(config: &Config, store: &Store) -> Result<Backends> {
        let mut entries = IndexMap::new();
        for (name, backend_config) in &config.backends {
            let backend = build(name, backend_config, store)?;
            let kind = backend_config.kind();
            entries.insert(name.clone(), Entry::new(backend, kind));
        }
        Ok(Backends {
            entries,
            source: config.source.clone(),
        })
    }

    /// Backends made by the caller (an embedder's own, or a test's recording fake), with the
    /// kind each reports.
    pub fn from_parts(
        backends: impl IntoIterator<Item = (&'static str, Arc<dyn ContainerBackend>)>,
    ) -> Backends {
        let entries = backends
            .into_iter()
            .map(|(kind, backend)| (backend.name().to_string(), Entry::new(backend, kind)))
            .collect();
        Backends {
            entries,
            source: "<given backends>".into(),
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    pub fn get(&self, name: &str) -> Result<&Arc<dyn ContainerBackend>> {
        match self.entries.get(name) {
            Some(entry) => Ok(&entry.backend),
            None => Err(
                Error::not_found(berth_core::Object::Backend, name).with_hint(format!(
                    "configured backends: {} (see `berth backend ls`)",
                    self.names().collect::<Vec<_>>().join(", ")
                )),
            ),
        }
    }

    /// Backend `requested`, else the first configured one; with its name.
    pub fn get_or_first(
        &self,
        requested: Option<&str>,
    ) -> Result<(&str, &Arc<dyn ContainerBackend>)> {
        let name = match requested {
            Some(name) => name,
            None => self.names().next().ok_or_else(|| Error::Config {
                path: self.source.clone(),
                message: "no backend is configured: add a [backends.<name>] table".into(),
            })?,
        };
        self.get(name)?;
        let (name, entry) = self.entries.get_key_value(name).expect("checked above");
        Ok((name, &entry.backend))
    }

    /// Refuses `needed` on backend `name` unless it has every capability in it, naming the
    /// first one missing and the configured backends that have it.
    pub fn require(&self, name: &str, needed: Capabilities) -> Result<()> {
        self.get(name)?;
        let has = self.entries[name].capabilities;
        let Some(missing) = needed.iter().find(|c| !has.contains(*c)) else {
            return Ok(());
        };
        let able: Vec<&str> = self
            .entries
            .iter()
            .filter(|(_, e)| e.capabilities.contains(missing))
            .map(|(n, _)| n.as_str())
            .collect();
        let hint = match able.as_slice() {
            [] => format!("no configured backend supports {missing}"),
            able => format!(
                "configured backends that do: {} (choose one with --backend)",
                able.join(", ")
            ),
        };
        Err(Error::NotSupported {
            backend: name.to_string(),
            operation: missing.asked_by().to_string(),
            hint,
        })
    }

    /// Whether backend `name` has `capability` (false for an unknown backend).
    pub fn can(&self, name: &str, capability: Capability) -> bool {
        self.entries
            .get(name)
            .is_some_and(|e| e.capabilities.contains(capability))
    }

    /// Whether the engine keeps the restart policies of backend `name`'s containers.
    pub fn engine_restarts(&self, name: &str) -> bool {
        self.entries.get(name).is_some_and(|e| e.engine_restarts)
    }

    /// Pings every backend at once; an unreachable one is reported unhealthy, not as an error.
    pub async fn infos(&self) -> Vec<BackendInfo> {
        futures_util::future::join_all(self.names().map(|name| self.probe(name))).await
    }

    /// One backend's answer to a ping, with its capabilities; a failure is an unhealthy entry
    /// saying why.
    pub async fn probe(&self, name: &str) -> BackendInfo {
        let entry = &self.entries[name];
        let answer = entry.backend.version().await;
        BackendInfo {
            name: name.to_string(),
            kind: entry.kind.to_string(),
            healthy: answer.is_ok(),
            features: entry.capabilities.names(),
            detail: answer.as_ref().err().map(ToString::to_string),
            version: answer.unwrap_or_default(),
        }
    }
}

/// This binary, which backends re-execute as `role` (its `main` dispatches those entry points).
fn berth_exe(role: &str) -> Result<std::path::PathBuf> {
    std::env::current_exe()
        .map_err(|e| Error::io(format!("locating the berth binary for {role}"), e))
}

/// The one place a backend `type` becomes an implementation.
fn build(name: &str, config: &BackendConfig, store: &Store) -> Result<Arc<dyn ContainerBackend>> {
    Ok(match config {
        BackendConfig::Native(native) => Arc::new(berth_backend_native::NativeBackend::new(
            name,
            native,
            store.clone(),
            berth_exe("the supervisor")?,
        )?),
        BackendConfig::Docker(docker) => Arc::new(berth_backend_docker::DockerBackend::new(
            name,
            docker,
            store.clone(),
        )?),
        BackendConfig::Apple(apple) => Arc::new(berth_backend_docker::DockerBackend::apple(
            name,
            apple,
            store.clone(),
        )?),
        BackendConfig::Containerd(containerd) => {
            Arc::new(berth_backend_containerd::ContainerdBackend::new(
                name,
                containerd,
                store.clone(),
                berth_exe("the task logger")?,
            )?)
        }
    })
}
