//! The host: configured backends, berth's container records and the plugin pipeline.
//!
//! Every container operation flows through here in the order DESIGN.md gives: name policy ->
//! backend policy -> pre-create hooks -> backend create -> post-create -> pre-start -> start ->
//! post-start, and likewise for stop and remove. A pre-hook may deny; a post-hook only observes.
//! Each container has a record in the state store (its name, backend and final spec) written
//! under the container's lock, so concurrent `berth` processes agree on what exists.

use std::sync::{Arc, OnceLock};

use berth_core::{
    BackendInfo, ContainerBackend, ContainerInfo, ContainerSpec, ContainerState, Durability, Error,
    ListFilter, LockMode, RemoveOptions, Result, StopOptions, Store,
    config::{BackendConfig, Config, PluginWorld},
};
use berth_plugins::{
    ContainerDirectory, Hook, HostServices, PackageMount, PackageService, PluginHost,
    SnapshotChange, SnapshotService, VolumeService,
};
use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// Store kind of berth's own container records.
const CONTAINERS: &str = "containers";
/// Lock taken while a name is checked and claimed, so two processes cannot take the same one.
const NAMES_LOCK: &str = "names";

/// What berth remembers about a container, whatever backend runs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    pub backend: String,
    /// The spec after plugins patched it: what the backend was asked to run.
    pub spec: ContainerSpec,
    pub created: DateTime<Utc>,
}

pub struct Host {
    pub config: Config,
    pub store: Store,
    backends: IndexMap<String, Arc<dyn ContainerBackend>>,
    plugins: OnceLock<Option<Arc<PluginHost>>>,
    /// The lifecycle-hook plugins alone, for commands that consult nothing else.
    hook_plugins: OnceLock<Option<Arc<PluginHost>>>,
    runtime: tokio::runtime::Handle,
}

impl Host {
    pub fn new(config: Config, runtime: tokio::runtime::Handle) -> Result<Host> {
        let store = Store::open(&config.host.state_dir, &config.host.run_dir)?;
        let backends = config
            .backends
            .iter()
            .map(|(name, backend)| Ok((name.clone(), build_backend(name, backend, &store)?)))
            .collect::<Result<_>>()?;
        Ok(Host {
            config,
            store,
            backends,
            plugins: OnceLock::new(),
            hook_plugins: OnceLock::new(),
            runtime,
        })
    }

    /// The plugin host, loaded on first use so commands that need no policy never start wasmtime.
    pub fn plugins(self: &Arc<Self>) -> Result<Option<Arc<PluginHost>>> {
        self.load_once(&self.plugins, PluginHost::load)
    }

    /// What start, stop and rm consult: the lifecycle-hook plugins (all of them once a create
    /// in this process has loaded them). A name or backend policy is never loaded for these.
    fn hook_plugins(self: &Arc<Self>) -> Result<Option<Arc<PluginHost>>> {
        if let Some(all) = self.plugins.get() {
            return Ok(all.clone());
        }
        self.load_once(&self.hook_plugins, |config, services| {
            PluginHost::load_playing(config, PluginWorld::LifecycleHooks, services)
        })
    }

    /// `cell`'s plugin host as `load` makes it, or `None` if it loaded no plugin (and so
    /// started no engine).
    fn load_once(
        self: &Arc<Self>,
        cell: &OnceLock<Option<Arc<PluginHost>>>,
        load: impl FnOnce(&Config, HostServices) -> Result<PluginHost>,
    ) -> Result<Option<Arc<PluginHost>>> {
        if let Some(loaded) = cell.get() {
            return Ok(loaded.clone());
        }
        let services = HostServices::all(Arc::new(Services(Arc::downgrade(self))));
        let host = load(&self.config, services)?;
        let loaded = (!host.is_empty()).then(|| Arc::new(host));
        Ok(cell.get_or_init(|| loaded).clone())
    }

    pub fn backend(&self, name: &str) -> Result<&Arc<dyn ContainerBackend>> {
        self.backends.get(name).ok_or_else(|| {
            Error::not_found("backend", name).with_hint(format!(
                "configured backends: {} (see `berth backend ls`)",
                self.backends.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// Backend `requested`, else the first configured one; with its name.
    pub fn backend_or_first(
        &self,
        requested: Option<&str>,
    ) -> Result<(String, &Arc<dyn ContainerBackend>)> {
        let name = match requested {
            Some(name) => name,
            None => self.backends.keys().next().ok_or_else(|| Error::Config {
                path: self.config.source.clone(),
                message: "no backend is configured: add a [backends.<name>] table".into(),
            })?,
        };
        Ok((name.to_string(), self.backend(name)?))
    }

    /// Pings every backend at once; an unreachable one is reported unhealthy, not as an error.
    pub async fn backend_infos(&self) -> Vec<BackendInfo> {
        futures_util::future::join_all(self.backends.keys().map(|name| self.probe(name))).await
    }

    /// One backend's answer to a ping, an error folded into an unhealthy entry.
    async fn probe(&self, name: &str) -> BackendInfo {
        let backend = &self.backends[name];
        backend.info().await.unwrap_or_else(|e| BackendInfo {
            name: name.to_string(),
            kind: self.config.backends[name].kind().to_string(),
            version: String::new(),
            healthy: false,
            features: Vec::new(),
            detail: Some(e.to_string()),
        })
    }

    // ---- volumes and packages --------------------------------------------------------------

    pub fn volumes(&self) -> berth_quota::Volumes {
        berth_quota::Volumes::open(&self.config.quota, &self.store)
    }

    /// Removes volume `name` unless a container mounts it.
    pub fn remove_volume(&self, name: &str) -> Result<()> {
        if let Some(user) = self
            .records()?
            .iter()
            .find(|r| r.spec.mounts.iter().any(|m| m.source == name))
        {
            return Err(Error::conflict(
                format!("volume {name}"),
                format!("container {} uses it", user.name),
            )
            .with_hint(format!(
                "remove the container first: berth rm {}",
                user.name
            )));
        }
        self.volumes().remove(name)
    }

    pub fn packages(&self) -> berth_packages::Packages {
        berth_packages::Packages::new(self.store.state_dir())
    }

    /// Where a container sees package `name`: `[packages].mount-prefix`/name.
    pub fn package_target(&self, name: &str) -> String {
        let prefix = self.config.packages.mount_prefix.trim_end_matches('/');
        format!("{prefix}/{name}")
    }

    fn package_mount(&self, package: berth_packages::Installed) -> PackageMount {
        PackageMount {
            target: self.package_target(&package.name),
            package,
        }
    }

    // ---- records -------------------------------------------------------------------------

    pub fn records(&self) -> Result<Vec<ContainerRecord>> {
        let mut records = Vec::new();
        for id in self.store.list(Durability::Persistent, CONTAINERS)? {
            match self
                .store
                .read(Durability::Persistent, CONTAINERS, &id, "config")?
            {
                Some(record) => records.push(record),
                // A directory without a record is a create in progress or a removal's leftover.
                None => continue,
            }
        }
        Ok(records)
    }

    /// Finds a container by exact id, exact name, or unique id prefix.
    pub fn resolve(&self, reference: &str) -> Result<ContainerRecord> {
        let records = self.records()?;
        if let Some(record) = records
            .iter()
            .find(|r| r.id == reference || r.name == reference)
        {
            return Ok(record.clone());
        }
        let mut prefixed = records.iter().filter(|r| r.id.starts_with(reference));
        match (prefixed.next(), prefixed.next()) {
            (Some(record), None) if !reference.is_empty() => Ok(record.clone()),
            (Some(_), Some(_)) => Err(Error::invalid(
                format!("container reference {reference:?}"),
                "matches more than one container id",
            )
            .with_hint("use more characters of the id, or the name")),
            _ => Err(Error::not_found("container", reference)
                .with_hint("see `berth ps -a` for existing containers")),
        }
    }

    /// Live info for a record; an unreachable backend yields a `dead` entry saying why.
    pub async fn info(&self, record: &ContainerRecord) -> ContainerInfo {
        let result = match self.backend(&record.backend) {
            Ok(backend) => backend.inspect(&record.id).await,
            Err(e) => Err(e),
        };
        result.unwrap_or_else(|e| ContainerInfo {
            id: record.id.clone(),
            name: record.name.clone(),
            image: record.spec.image.clone(),
            state: ContainerState::Dead,
            pid: None,
            exit_code: None,
            created: record.created,
            started: None,
            finished: None,
            labels: record.spec.labels.clone(),
            backend: record.backend.clone(),
            status_detail: Some(e.to_string()),
            ip_address: None,
            limits: None,
        })
    }

    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<(ContainerRecord, ContainerInfo)>> {
        let mut rows = Vec::new();
        for record in self.records()? {
            let info = self.info(&record).await;
            if filter.matches(&info) {
                rows.push((record, info));
            }
        }
        rows.sort_by_key(|(record, _)| std::cmp::Reverse(record.created));
        Ok(rows)
    }

    // ---- the pipeline --------------------------------------------------------------------

    /// Name policy, backend policy, pre-create hooks, backend create, post-create.
    pub async fn create(self: &Arc<Self>, mut spec: ContainerSpec) -> Result<ContainerRecord> {
        let plugins = self.plugins()?;
        if spec.name.is_empty() {
            let generated = match &plugins {
                Some(p) => p.generate_name("container", &spec)?,
                None => None,
            };
            spec.name = generated.unwrap_or_else(default_name);
        }
        check_name_syntax(&spec.name)?;
        if let Some(p) = &plugins {
            p.validate_name("container", &spec.name)?;
        }

        let backend_name = self.choose_backend(plugins.as_deref(), &spec).await?;
        spec.backend = Some(backend_name.clone());

        if let Some(p) = &plugins {
            p.on_event(Hook::PreCreate, &mut spec, None)?;
        }

        let id = berth_core::new_id();
        let record = {
            let _names = self
                .store
                .lock(CONTAINERS, NAMES_LOCK, LockMode::Exclusive)?;
            if self.records()?.iter().any(|r| r.name == spec.name) {
                return Err(Error::AlreadyExists {
                    kind: "container",
                    name: spec.name.clone(),
                    hint: "choose another --name, or remove the old one with `berth rm`".into(),
                });
            }
            let backend = self.backend(&backend_name)?;
            backend.create(&id, &self.prepared(&spec)?).await?;
            let record = ContainerRecord {
                id: id.clone(),
                name: spec.name.clone(),
                backend: backend_name,
                spec: spec.clone(),
                created: Utc::now(),
            };
            if let Err(e) =
                self.store
                    .write(Durability::Persistent, CONTAINERS, &id, "config", &record)
            {
                // Without a record nobody could find the container again: undo the create.
                let _ = backend.remove(&id, RemoveOptions::forced()).await;
                return Err(e);
            }
            record
        };
        if let Some(p) = &plugins {
            observe(p.on_event(Hook::PostCreate, &mut spec, Some(&id)));
        }
        Ok(record)
    }

    /// `spec` as a backend sees it, with its services prepared: a mount whose source is a
    /// volume name (no '/') gets the volume's host directory, and each package is installed
    /// (once) and mounted read-only under the configured prefix. The record keeps the names, so
    /// a volume in use is known.
    fn prepared(&self, spec: &ContainerSpec) -> Result<ContainerSpec> {
        let mut resolved = spec.clone();
        let volumes = self.volumes();
        for mount in resolved.mounts.iter_mut() {
            if !mount.source.starts_with('/') {
                mount.source = volumes.path(&mount.source)?.display().to_string();
            }
        }
        if !spec.packages.is_empty() {
            let refs = spec
                .packages
                .iter()
                .map(|p| berth_packages::parse_ref(p))
                .collect::<Result<Vec<_>>>()?;
            let installed = self
                .packages()
                .ensure_all(&refs, self.config.packages.repository.as_ref())?;
            for (name, path) in installed {
                resolved.mounts.push(berth_core::Mount {
                    source: path.display().to_string(),
                    target: self.package_target(&name),
                    readonly: true,
                    owner: None,
                });
            }
        }
        Ok(resolved)
    }

    /// The backend policy decides among every backend's answer to a probe; without one, a
    /// requested backend is used as is and otherwise the first healthy backend in config order
    /// runs the container, so backends after it are never probed.
    async fn choose_backend(
        &self,
        plugins: Option<&PluginHost>,
        spec: &ContainerSpec,
    ) -> Result<String> {
        let mut probed = None;
        if let Some(policy) = plugins.filter(|p| p.has_backend_policy()) {
            let candidates = self.backend_infos().await;
            if let Some(chosen) = policy.select_backend(spec, &candidates)? {
                return Ok(chosen);
            }
            probed = Some(candidates);
        }
        if let Some(requested) = &spec.backend {
            if !self.backends.contains_key(requested) {
                return Err(Error::not_found("backend", requested.as_str())
                    .with_hint("configure it under [backends.<name>] in berth.toml"));
            }
            // Even when its probe fails: the backend's own attempt (with its retries) fails
            // with the most precise error there is.
            return Ok(requested.clone());
        }
        let healthy = match probed {
            Some(candidates) => candidates.into_iter().find(|c| c.healthy),
            None => {
                let mut first = None;
                for name in self.backends.keys() {
                    let info = self.probe(name).await;
                    if info.healthy {
                        first = Some(info);
                        break;
                    }
                }
                first
            }
        };
        healthy.map(|c| c.name).ok_or_else(|| {
            Error::conflict(
                "no backend can run the container",
                "every configured backend is unhealthy",
            )
            .with_hint("see `berth backend ls`")
        })
    }

    pub async fn start(self: &Arc<Self>, record: &ContainerRecord) -> Result<()> {
        let plugins = self.hook_plugins()?;
        let mut spec = record.spec.clone();
        if let Some(p) = &plugins {
            p.on_event(Hook::PreStart, &mut spec, Some(&record.id))?;
        }
        self.backend(&record.backend)?.start(&record.id).await?;
        if let Some(p) = &plugins {
            observe(p.on_event(Hook::PostStart, &mut spec, Some(&record.id)));
        }
        Ok(())
    }

    pub async fn stop(
        self: &Arc<Self>,
        record: &ContainerRecord,
        options: &StopOptions,
    ) -> Result<()> {
        let plugins = self.hook_plugins()?;
        let mut spec = record.spec.clone();
        if let Some(p) = &plugins {
            p.on_event(Hook::PreStop, &mut spec, Some(&record.id))?;
        }
        self.backend(&record.backend)?
            .stop(&record.id, options)
            .await?;
        if let Some(p) = &plugins {
            observe(p.on_event(Hook::PostStop, &mut spec, Some(&record.id)));
        }
        Ok(())
    }

    pub async fn remove(
        self: &Arc<Self>,
        record: &ContainerRecord,
        options: RemoveOptions,
    ) -> Result<()> {
        let plugins = self.hook_plugins()?;
        let mut spec = record.spec.clone();
        if let Some(p) = &plugins {
            p.on_event(Hook::PreRemove, &mut spec, Some(&record.id))?;
        }
        let _lock = self
            .store
            .lock(CONTAINERS, &record.id, LockMode::Exclusive)?;
        self.backend(&record.backend)?
            .remove(&record.id, options)
            .await?;
        self.store.remove(CONTAINERS, &record.id)?;
        if let Some(p) = &plugins {
            observe(p.on_event(Hook::PostRemove, &mut spec, Some(&record.id)));
        }
        Ok(())
    }
}

/// Post-hooks observe: a failure is logged (and in the decision log) but undoes nothing.
fn observe(result: Result<()>) {
    if let Err(e) = result {
        tracing::warn!(error = %e, "post-hook failed; the operation stands");
    }
}

/// Docker's rule for container names; plugins may be stricter, never looser.
fn check_name_syntax(name: &str) -> Result<()> {
    let mut bytes = name.bytes();
    let ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && name.len() <= 128;
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            format!("container name {name:?}"),
            "must start with a letter or digit and use only [a-zA-Z0-9_.-], at most 128 characters",
        ))
    }
}

fn default_name() -> String {
    format!("berth-{}", &berth_core::new_id()[..12])
}

/// The one place a backend `type` becomes an implementation.
fn build_backend(
    name: &str,
    config: &BackendConfig,
    store: &Store,
) -> Result<Arc<dyn ContainerBackend>> {
    match config {
        BackendConfig::Native(native) => {
            let exe = std::env::current_exe()
                .map_err(|e| Error::io("locating the berth binary for the supervisor", e))?;
            Ok(Arc::new(berth_backend_native::NativeBackend::new(
                name,
                native,
                store.clone(),
                exe,
            )?))
        }
        BackendConfig::Docker(docker) => Ok(Arc::new(berth_backend_docker::DockerBackend::new(
            name,
            docker,
            store.clone(),
        )?)),
        BackendConfig::Containerd(containerd) => Ok(Arc::new(
            berth_backend_containerd::ContainerdBackend::new(name, containerd, store.clone())?,
        )),
    }
}

/// What granted plugins reach: berth's containers (read-only), its volumes, its packages and
/// the backends' snapshots.
struct Services(std::sync::Weak<Host>);

impl Services {
    /// The host, unless it is being dropped while a plugin still calls (the command is ending).
    fn host(&self) -> Result<Arc<Host>> {
        self.0.upgrade().ok_or_else(|| Error::Unavailable {
            service: "the berth host".into(),
            endpoint: "this process".into(),
            reason: "it is shutting down".into(),
            hint: "a plugin called a host interface after the command finished".into(),
        })
    }
}

/// Plugin calls are synchronous and may run inside the async runtime, so backend queries run
/// on a scoped thread that blocks on the runtime's handle.
fn block_on<T: Send>(
    runtime: &tokio::runtime::Handle,
    future: impl Future<Output = T> + Send,
) -> T {
    std::thread::scope(|s| {
        s.spawn(|| runtime.block_on(future))
            .join()
            .expect("container directory query panicked")
    })
}

impl ContainerDirectory for Services {
    fn containers(&self) -> Result<Vec<ContainerInfo>> {
        let host = self.host()?;
        let filter = ListFilter {
            all: true,
            ..Default::default()
        };
        let rows = block_on(&host.runtime, host.list(&filter))?;
        Ok(rows.into_iter().map(|(_, info)| info).collect())
    }

    fn container(&self, reference: &str) -> Result<Option<ContainerInfo>> {
        let host = self.host()?;
        match host.resolve(reference) {
            Ok(record) => Ok(Some(block_on(&host.runtime, host.info(&record)))),
            Err(e) if e.kind() == berth_core::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl VolumeService for Services {
    fn volumes(&self) -> Result<Vec<berth_quota::Volume>> {
        self.host()?.volumes().list()
    }

    fn ensure_volume(&self, name: &str, limit: Option<u64>) -> Result<berth_quota::Volume> {
        let volumes = self.host()?.volumes();
        match volumes.get(name) {
            Err(e) if e.kind() == berth_core::ErrorKind::NotFound => volumes.create(name, limit),
            found => found,
        }
    }

    fn remove_volume(&self, name: &str) -> Result<()> {
        self.host()?.remove_volume(name)
    }
}

impl PackageService for Services {
    fn ensure_package(&self, name: &str, version: &str) -> Result<PackageMount> {
        let host = self.host()?;
        let package =
            host.packages()
                .ensure(name, version, host.config.packages.repository.as_ref())?;
        Ok(host.package_mount(package))
    }

    fn packages(&self) -> Result<Vec<PackageMount>> {
        let host = self.host()?;
        let installed = host.packages().list()?;
        Ok(installed
            .into_iter()
            .map(|p| host.package_mount(p))
            .collect())
    }
}

impl SnapshotService for Services {
    fn snapshots(&self, backend: &str) -> Result<Vec<berth_core::SnapshotInfo>> {
        let host = self.host()?;
        let backend = host.backend(backend)?;
        block_on(&host.runtime, backend.list_snapshots())
    }

    fn change_snapshot(&self, backend: &str, change: SnapshotChange) -> Result<()> {
        let host = self.host()?;
        let backend = host.backend(backend)?;
        block_on(&host.runtime, async {
            match change {
                SnapshotChange::Prepare { key, parent } => backend
                    .prepare_snapshot(&key, parent.as_deref())
                    .await
                    .map(drop),
                SnapshotChange::Commit { name, key } => backend.commit_snapshot(&name, &key).await,
                SnapshotChange::Remove { key } => backend.remove_snapshot(&key).await,
            }
        })
    }

    fn commit_container(&self, reference: &str, version: Option<&str>) -> Result<String> {
        let host = self.host()?;
        let record = host.resolve(reference)?;
        let backend = host.backend(&record.backend)?;
        block_on(&host.runtime, backend.commit(&record.id, version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        for ok in ["web", "app-0123abcd-0001", "a.b_c-d", "9lives"] {
            assert!(check_name_syntax(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-web", "we b", "a/b", "ünï", &"x".repeat(129)] {
            assert!(check_name_syntax(bad).is_err(), "{bad:?}");
        }
        assert!(check_name_syntax(&default_name()).is_ok());
    }
}
