//! berth's orchestrator: everything the CLI (and, later, the CRI server) shares.
//!
//! An [`Engine`] owns the configured backends ([`backends`]), berth's container records
//! ([`records`]) and the policy ([`policy`]) that plugins supply, and runs every container
//! operation through them in DESIGN.md's order: name policy -> name claim -> placement ->
//! capability check -> pre-create hooks -> services (volumes, packages) -> backend create ->
//! post-create, and likewise for start, stop and remove ([`pipeline`]). A step that fails
//! after earlier steps had effects undoes berth's own effects and tells the hooks
//! (`create-failed`). Operations that are one backend call (logs, exec, images, snapshots)
//! are checked against the backend's capabilities here, in one place, before they are sent.

pub mod backends;
mod copy;
mod gc;
mod mounts;
mod operations;
mod pipeline;
pub mod pods;
pub mod policy;
pub mod records;
mod registries;
mod restarts;
mod services;

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_core::config::Config;
use berth_core::{BackendInfo, ContainerBackend, ContainerInfo, ContainerState, Error, Result};
use berth_core::{ListFilter, Store};
use berth_plugins::{PackageMount, PluginHost};

pub use backends::Backends;
pub use copy::CopyOptions;
pub use gc::{GcOptions, GcReport};
pub use pipeline::CreateOptions;
pub use policy::Policy;
pub use records::{ContainerRecord, Phase, Records};

/// The orchestrator. Build it once per process with [`Engine::open`]; it is shared as an
/// `Arc` because granted plugins call back into it.
pub struct Engine {
    pub config: Config,
    pub store: Store,
    backends: Backends,
    records: Records,
    policies: policy::Policies,
    networks: berth_network::Networks,
    runtime: tokio::runtime::Handle,
}

impl Engine {
    /// The engine `config` describes, with its plugins loaded on first use.
    pub fn open(config: Config, runtime: tokio::runtime::Handle) -> Result<Arc<Engine>> {
        config.host.check_dirs(&config.source)?;
        let store = Store::open(&config.host.state_dir, &config.host.run_dir)?;
        let backends = Backends::from_config(&config, &store)?;
        let networks = berth_network::Networks::new(&config.network, &store)?;
        Ok(Arc::new_cyclic(|engine| Engine {
            records: Records::new(store.clone()),
            policies: policy::Policies::plugins(engine.clone()),
            networks,
            config,
            store,
            backends,
            runtime,
        }))
    }

    /// An engine on given backends and policy (`None`: no policy), for embedders and tests.
    pub fn with_parts(
        config: Config,
        store: Store,
        backends: Backends,
        policy: Option<Arc<dyn Policy>>,
        runtime: tokio::runtime::Handle,
    ) -> Result<Arc<Engine>> {
        Ok(Arc::new(Engine {
            records: Records::new(store.clone()),
            policies: policy::Policies::Given(policy),
            networks: berth_network::Networks::new(&config.network, &store)?,
            config,
            store,
            backends,
            runtime,
        }))
    }

    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    pub fn backend(&self, name: &str) -> Result<&Arc<dyn ContainerBackend>> {
        self.backends.get(name)
    }

    /// Pings every backend at once; an unreachable one is reported unhealthy, not as an error.
    pub async fn backend_infos(&self) -> Vec<BackendInfo> {
        self.backends.infos().await
    }

    /// The plugin host, for commands about plugins (`plugin ls`, `plugin call`).
    pub fn plugins(&self) -> Result<Option<Arc<PluginHost>>> {
        self.policies.plugin_host()
    }

    /// Replaces the plugins with `config`'s `[[plugins]]` (a server's reload), compiled beside
    /// the running set and swapped in at once; on failure the running set stays. The rest of
    /// `config` is not applied. The new host (`None`: no plugin configured).
    pub fn reload_plugins(&self, config: &berth_core::Config) -> Result<Option<Arc<PluginHost>>> {
        self.policies.reload(config)
    }

    // ---- records -------------------------------------------------------------------------

    pub fn records(&self) -> Result<Vec<ContainerRecord>> {
        self.records.containers()
    }

    /// Finds a container by exact id, exact name, or unique id prefix.
    pub fn resolve(&self, reference: &str) -> Result<ContainerRecord> {
        self.records.resolve(reference)
    }

    /// Berth's networks (`berth network ...`).
    pub fn networks(&self) -> &berth_network::Networks {
        &self.networks
    }

    /// Live info for a record, with the networks berth attached it to; an unreachable
    /// backend, an unreadable record or a removal that did not finish yields a `dead` entry
    /// saying why.
    pub async fn info(&self, record: &ContainerRecord) -> ContainerInfo {
        let answer = match self.backend_of(record) {
            Ok(backend) => backend.inspect(&record.id).await,
            Err(e) => Err(e),
        };
        self.complete(record, answer)
    }

    /// The backend that holds `record`'s container, if the record can say.
    fn backend_of(&self, record: &ContainerRecord) -> Result<&Arc<dyn ContainerBackend>> {
        match record.phase {
            Phase::Unreadable => Err(self.usable(record).expect_err("unreadable")),
            _ => self.backend(&record.backend),
        }
    }

    /// `info` from what the backend answered: a failure becomes a `dead` entry saying why; the
    /// restart count and the networks are the engine's to add.
    fn complete(&self, record: &ContainerRecord, answer: Result<ContainerInfo>) -> ContainerInfo {
        let mut info = self.settle(record, answer);
        if self.backends.engine_restarts(&record.backend) {
            (info.state, info.restart_count) = self.restart_view(record, info.state);
        }
        if self.networked(&record.backend) && berth_network::may_attach(&record.spec) {
            let (networks, ports) = self.networks.status(&record.id);
            if info.ip_address.is_none() {
                info.ip_address = networks
                    .iter()
                    .find_map(|n| n.address.as_deref()?.split('/').next())
                    .map(str::to_string);
            }
            info.networks = networks;
            info.ports = ports;
        }
        info
    }

    /// `berth network rm`: refused (73) while a container uses the network.
    pub fn remove_network(&self, name: &str) -> Result<()> {
        self.networks.remove(name, |id| self.holder(id))
    }

    /// The names of the containers on network `name`.
    pub fn network_users(&self, name: &str) -> Result<Vec<String>> {
        Ok(self
            .networks
            .users(name)?
            .iter()
            .map(|id| match self.records.resolve(id) {
                Ok(record) => record.name,
                Err(_) => id.clone(),
            })
            .collect())
    }

    /// Whether the engine networks this backend's containers (it joins prepared namespaces).
    fn networked(&self, backend: &str) -> bool {
        self.backends
            .can(backend, berth_core::Capability::NetworkNamespace)
    }

    fn settle(&self, record: &ContainerRecord, result: Result<ContainerInfo>) -> ContainerInfo {
        let result = match result {
            Err(e) if record.phase == Phase::Removing => Err(Error::conflict(
                format!("container {}", record.name),
                format!("its removal did not finish ({e})"),
            )
            .with_hint("`berth rm -f` or `berth gc` finishes it")),
            other => other,
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
            networks: Vec::new(),
            ports: Vec::new(),
            limits: None,
            restart_count: 0,
        })
    }

    /// Records and live info of the containers `filter` selects, newest first: each backend
    /// asked once about all of its containers.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<(ContainerRecord, ContainerInfo)>> {
        let records = self.records()?;
        let mut answers: Vec<Option<Result<ContainerInfo>>> = Vec::new();
        answers.resize_with(records.len(), || None);
        // Per backend: the backend, and which records it is asked about.
        type Ask<'a> = (
            &'a Arc<dyn ContainerBackend>,
            Vec<usize>,
            Vec<berth_core::Listed<'a>>,
        );
        let mut asks: BTreeMap<&str, Ask> = BTreeMap::new();
        for (i, record) in records.iter().enumerate() {
            match self.backend_of(record) {
                Ok(backend) => {
                    let (_, indices, listed) = asks
                        .entry(&record.backend)
                        .or_insert_with(|| (backend, Vec::new(), Vec::new()));
                    indices.push(i);
                    listed.push(berth_core::Listed {
                        id: &record.id,
                        spec: &record.spec,
                        created: record.created,
                    });
                }
                Err(e) => answers[i] = Some(Err(e)),
            }
        }
        // Every backend at once: a daemon's round trips overlap the others' work.
        let asked =
            asks.into_values()
                .map(|(backend, indices, listed)| async move {
                    (indices, backend.statuses(&listed).await)
                });
        for (indices, answered) in futures_util::future::join_all(asked).await {
            for (i, answer) in indices.into_iter().zip(answered) {
                answers[i] = Some(answer);
            }
        }
        let mut rows = Vec::new();
        for (record, answer) in records.into_iter().zip(answers) {
            let info = self.complete(&record, answer.expect("every record is answered"));
            if filter.matches(&info) {
                rows.push((record, info));
            }
        }
        Ok(rows)
    }

    // ---- volumes and packages --------------------------------------------------------------

    pub fn volumes(&self) -> berth_quota::Volumes {
        berth_quota::Volumes::open(&self.config.quota, &self.store)
    }

    /// Removes volume `name` unless a container (or a create in progress) mounts it.
    pub fn remove_volume(&self, name: &str) -> Result<()> {
        if let Some(user) = self
            .records
            .all()?
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
}

#[cfg(test)]
mod testing;

/// The short form of an id, as messages and listings show it.
pub(crate) fn short(id: &str) -> &str {
    &id[..12.min(id.len())]
}
