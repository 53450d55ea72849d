//! Pods: apps (containers) that share one set of namespaces, the rkt way. A pod's IPC and UTS
//! namespaces are made by its infra process ([`infra`]) and held as namespace files; its
//! network namespace is the engine's networking for the pod's id, as a container's would be.
//! Apps are containers created with `--pod`: they join those namespaces by path and read the
//! pod's /etc/hosts, resolv.conf and hostname.
//!
//! Records use the store's item layer: the pod's config (persistent) and its infra process
//! (volatile: after a reboot the pod reads as dead, not as corrupt). A create or removal
//! records its phase first, and holds the pod's lock, so gc finishes what a killed one left.

pub mod infra;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use berth_core::{
    ContainerSpec, Error, ErrorKind, HostEntry, Item, LockMode, Mount, NetworkAttachment,
    NetworkNamespace, NetworkSpec, Object, ObjectRef, PodNamespaces, PortMapping, RemoveOptions,
    Result,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Engine, short};

/// What `berth pod create` asks for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct PodSpec {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub hostname: Option<String>,
    pub networks: Vec<String>,
    pub ports: Vec<PortMapping>,
    pub network: Option<NetworkSpec>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    pub extra_hosts: Vec<HostEntry>,
    /// A backend that claims pods; the first that does when not given.
    pub backend: Option<String>,
}

impl PodSpec {
    /// The pod's networking as the container spec the network service plans from.
    fn as_container(&self) -> ContainerSpec {
        ContainerSpec {
            name: self.name.clone(),
            image: "pod".into(),
            hostname: self.hostname.clone(),
            networks: self.networks.clone(),
            ports: self.ports.clone(),
            network: self.network.clone(),
            dns: self.dns.clone(),
            dns_search: self.dns_search.clone(),
            dns_options: self.dns_options.clone(),
            extra_hosts: self.extra_hosts.clone(),
            ..ContainerSpec::default()
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PodPhase {
    /// Its create has not finished (or died): gc removes it once nobody holds its lock.
    #[default]
    Creating,
    Created,
    /// Its removal has begun: the next `pod rm` or gc finishes it.
    Removing,
}

/// A pod's persistent record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PodRecord {
    pub id: String,
    pub name: String,
    pub backend: String,
    pub created: DateTime<Utc>,
    pub phase: PodPhase,
    pub hostname: String,
    pub spec: PodSpec,
    /// Where its apps' network comes from, and the resolver files they mount.
    pub network_namespace: NetworkNamespace,
    pub mounts: Vec<Mount>,
    pub ports: Vec<PortMapping>,
}

/// The infra process of a running pod (volatile).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct InfraState {
    pid: u32,
    started: u64,
}

/// `pod ls` and `pod inspect`.
#[derive(Debug, Clone, Serialize)]
pub struct PodInfo {
    pub id: String,
    pub name: String,
    /// `running` while its infra process lives, `dead` once it is gone, or the phase of a
    /// create or removal that has not finished.
    pub state: String,
    pub backend: String,
    pub created: DateTime<Utc>,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    pub infra_pid: Option<u32>,
    pub networks: Vec<NetworkAttachment>,
    pub ports: Vec<PortMapping>,
    pub apps: Vec<AppInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AppInfo {
    pub id: String,
    pub name: String,
    pub state: String,
    pub exit_code: Option<i32>,
}

const NAMES_LOCK: &str = "names";

impl Engine {
    fn namespace_dir(&self) -> PathBuf {
        self.store.run_dir().join("pod-namespaces")
    }

    /// The namespace files an app of pod `id` joins.
    fn pod_namespaces(&self, id: &str) -> PodNamespaces {
        let dir = self.namespace_dir();
        PodNamespaces {
            ipc: dir.join(format!("{id}.ipc")),
            uts: dir.join(format!("{id}.uts")),
        }
    }

    /// Every pod record, newest first.
    pub fn pods(&self) -> Result<Vec<PodRecord>> {
        let mut pods = Vec::new();
        for id in self
            .store
            .list(berth_core::Durability::Persistent, "pods")?
        {
            if let Some(pod) = self
                .store
                .load_item::<PodRecord>(&ObjectRef::Pod(&id), Item::Config)?
            {
                pods.push(pod);
            }
        }
        pods.sort_by_key(|p| std::cmp::Reverse(p.created));
        Ok(pods)
    }

    /// A pod by exact id, exact name, or unique id prefix.
    pub fn resolve_pod(&self, reference: &str) -> Result<PodRecord> {
        let pods = self.pods()?;
        if let Some(pod) = pods
            .iter()
            .find(|p| p.id == reference || p.name == reference)
        {
            return Ok(pod.clone());
        }
        let mut prefixed = pods.iter().filter(|p| p.id.starts_with(reference));
        match (prefixed.next(), prefixed.next()) {
            (Some(pod), None) if !reference.is_empty() => Ok(pod.clone()),
            (Some(_), Some(_)) => Err(Error::invalid(
                format!("pod id prefix {reference:?}"),
                "more than one pod has it",
            )
            .with_hint("give more of the id, or the name")),
            _ => Err(Error::not_found(Object::Pod, reference).with_hint("see `berth pod ls`")),
        }
    }

    fn infra_state(&self, id: &str) -> Result<Option<InfraState>> {
        self.store.load_item(&ObjectRef::Pod(id), Item::State)
    }

    /// Whether the pod's infra process lives.
    pub fn pod_running(&self, pod: &PodRecord) -> bool {
        matches!(self.infra_state(&pod.id), Ok(Some(s)) if infra::alive(&pod.id, s.pid, s.started))
    }

    /// `berth pod create`: the record (phase `creating`), the network plan, the infra process
    /// and its namespace files, the network attach; undone on failure.
    pub async fn create_pod(self: &Arc<Self>, spec: PodSpec) -> Result<PodRecord> {
        let mut spec = spec;
        if spec.name.is_empty() {
            spec.name = format!("pod-{}", &berth_core::new_id()[..12]);
        }
        berth_core::validate::container_name(&spec.name)?;
        berth_core::validate::spec(&spec.as_container())?;
        let backend = match &spec.backend {
            Some(name) => name.clone(),
            None => self
                .backends
                .names()
                .find(|b| self.backends.can(b, berth_core::Capability::Pods))
                .map(str::to_string)
                .ok_or_else(|| Error::NotSupported {
                    operation: "pods".into(),
                    backend: "any configured backend".into(),
                    hint: "configure a native backend".into(),
                })?,
        };
        self.backends.require(
            &backend,
            berth_core::Capabilities::of(&[berth_core::Capability::Pods]),
        )?;

        let id = berth_core::new_id();
        let object = ObjectRef::Pod(&id);
        let token = self.store.lock_object(&object, LockMode::Exclusive)?;
        let mut record = PodRecord {
            id: id.clone(),
            name: spec.name.clone(),
            backend,
            created: Utc::now(),
            phase: PodPhase::Creating,
            hostname: spec.hostname.clone().unwrap_or_else(|| spec.name.clone()),
            spec,
            network_namespace: NetworkNamespace::Private,
            mounts: Vec::new(),
            ports: Vec::new(),
        };
        {
            let names = self.store.lock("pods", NAMES_LOCK, LockMode::Exclusive)?;
            if let Some(other) = self.pods()?.into_iter().find(|p| p.name == record.name) {
                return Err(Error::AlreadyExists {
                    kind: Object::Pod,
                    name: record.name.clone(),
                    hint: format!(
                        "remove it with `berth pod rm {}` or choose another name",
                        short(&other.id)
                    ),
                });
            }
            self.store.store_item(&object, Item::Config, &record)?;
            drop(names);
        }
        berth_core::crash::point("pod.create.recorded");
        let made = self.make_pod(&mut record).await;
        let outcome = match made {
            Ok(()) => {
                record.phase = PodPhase::Created;
                self.store.store_item(&object, Item::Config, &record)
            }
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            if let Err(undo) = self.tear_down_pod(&record).await {
                tracing::warn!(pod = %id, error = %undo, "cannot undo a failed pod create; `berth gc` retries");
            }
            let _ = self.store.unlock(&token);
            return Err(e);
        }
        self.store.unlock(&token)?;
        Ok(record)
    }

    async fn make_pod(&self, record: &mut PodRecord) -> Result<()> {
        let mut spec = record.spec.as_container();
        spec.hostname = Some(record.hostname.clone());
        let plan = self
            .networks
            .plan(&record.id, &spec, |id| self.holder(id))?;
        record.network_namespace = plan.namespace;
        record.mounts = plan.mounts;
        record.ports = plan.ports;
        self.store
            .store_item(&ObjectRef::Pod(&record.id), Item::Config, &*record)?;
        let pid = infra::spawn(&record.id, &record.hostname)?;
        let started = infra::start_time(pid).unwrap_or_default();
        // Recorded before the namespace files, so a kill from here on leaves a process gc finds.
        self.store.store_item(
            &ObjectRef::Pod(&record.id),
            Item::State,
            &InfraState { pid, started },
        )?;
        let files = self.pod_namespaces(&record.id);
        let dir = self.namespace_dir();
        for (kind, file) in [("ipc", &files.ipc), ("uts", &files.uts)] {
            let name = file
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            berth_core::namespaces::bind(&infra::namespace(pid, kind), &dir, &name)?;
        }
        berth_core::crash::point("pod.create.infra");
        self.networks.attach(&record.id).await
    }

    /// Ends the infra process and removes every trace of the pod but its apps.
    async fn tear_down_pod(&self, record: &PodRecord) -> Result<()> {
        if let Some(state) = self.infra_state(&record.id)? {
            infra::kill(&record.id, state.pid, state.started);
        }
        for pid in infra::find(&record.id) {
            if let Some(started) = infra::start_time(pid) {
                infra::kill(&record.id, pid, started);
            }
        }
        let files = self.pod_namespaces(&record.id);
        berth_core::namespaces::remove(&files.ipc)?;
        berth_core::namespaces::remove(&files.uts)?;
        berth_core::namespaces::release_dir(&self.namespace_dir())?;
        self.networks.detach(&record.id).await?;
        self.networks.release(&record.id)?;
        self.store.delete_all(&ObjectRef::Pod(&record.id))
    }

    /// The containers that are apps of pod `id`.
    fn apps_of(&self, id: &str) -> Result<Vec<crate::ContainerRecord>> {
        Ok(self
            .records
            .all()?
            .into_iter()
            .filter(|r| r.spec.pod.as_deref() == Some(id))
            .collect())
    }

    /// `berth pod rm`: refused (73) while an app runs unless `force`; then every app, the
    /// infra process, the namespaces, the networks and the records go. Marked `removing`
    /// first, so a killed removal is finished by the next one or by gc.
    pub async fn remove_pod(self: &Arc<Self>, pod: &PodRecord, force: bool) -> Result<()> {
        let object = ObjectRef::Pod(&pod.id);
        let token = self.store.lock_object(&object, LockMode::Exclusive)?;
        let result = async {
            let apps = self.apps_of(&pod.id)?;
            if !force {
                for app in &apps {
                    if self.info(app).await.state.is_running() {
                        return Err(Error::conflict(
                            format!("pod {:?}", pod.name),
                            format!("its app {:?} is running", app.name),
                        )
                        .with_hint(format!("stop it first, or `berth pod rm -f {}`", pod.name)));
                    }
                }
            }
            let mut record = pod.clone();
            record.phase = PodPhase::Removing;
            self.store.store_item(&object, Item::Config, &record)?;
            berth_core::crash::point("pod.remove.marked");
            for app in apps {
                match self.remove(&app, RemoveOptions::forced()).await {
                    Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            self.tear_down_pod(&record).await
        }
        .await;
        let _ = self.store.unlock(&token);
        result
    }

    /// What `pod ls` and `pod inspect` show.
    pub async fn pod_info(&self, pod: &PodRecord) -> PodInfo {
        let state = match pod.phase {
            PodPhase::Creating => "creating".to_string(),
            PodPhase::Removing => "removing".to_string(),
            PodPhase::Created if self.pod_running(pod) => "running".to_string(),
            PodPhase::Created => "dead".to_string(),
        };
        let mut apps = Vec::new();
        for app in self.apps_of(&pod.id).unwrap_or_default() {
            let info = self.info(&app).await;
            apps.push(AppInfo {
                id: app.id.clone(),
                name: app.name.clone(),
                state: info.state.to_string(),
                exit_code: info.exit_code,
            });
        }
        let (networks, _) = self.networks.status(&pod.id);
        PodInfo {
            id: pod.id.clone(),
            name: pod.name.clone(),
            state,
            backend: pod.backend.clone(),
            created: pod.created,
            hostname: pod.hostname.clone(),
            labels: pod.spec.labels.clone(),
            infra_pid: self.infra_state(&pod.id).ok().flatten().map(|s| s.pid),
            networks,
            ports: pod.ports.clone(),
            apps,
        }
    }

    /// At an app's create: the pod it joins, checked running, and the spec made to fit it
    /// (the pod's backend; networking is the pod's, so the app may not ask for its own).
    pub(crate) fn pod_for_app(&self, spec: &mut ContainerSpec) -> Result<Option<PodRecord>> {
        let Some(reference) = spec.pod.clone() else {
            return Ok(None);
        };
        let pod = self.resolve_pod(&reference)?;
        if pod.phase != PodPhase::Created || !self.pod_running(&pod) {
            return Err(Error::conflict(
                format!("pod {:?}", pod.name),
                "it is not running (its infra process is gone)",
            )
            .with_hint(format!("remove it with `berth pod rm -f {}`", pod.name)));
        }
        let own_networking = [
            (!spec.networks.is_empty(), "--network"),
            (!spec.ports.is_empty(), "-p"),
            (spec.network.is_some(), "--ip"),
            (
                !spec.dns.is_empty() || !spec.dns_search.is_empty() || !spec.dns_options.is_empty(),
                "--dns",
            ),
            (!spec.extra_hosts.is_empty(), "--add-host"),
            (spec.hostname.is_some(), "--hostname"),
        ];
        if let Some((_, flag)) = own_networking.iter().find(|(asked, _)| *asked) {
            return Err(Error::invalid(
                format!("{flag} on an app of pod {:?}", pod.name),
                "an app shares its pod's network and hostname",
            )
            .with_hint("set it on the pod (`berth pod create`)"));
        }
        match &spec.backend {
            Some(asked) if *asked != pod.backend => {
                return Err(Error::invalid(
                    format!("backend {asked:?} for an app of pod {:?}", pod.name),
                    format!("the pod runs on {:?}", pod.backend),
                ));
            }
            _ => spec.backend = Some(pod.backend.clone()),
        }
        spec.pod = Some(pod.id.clone());
        Ok(Some(pod))
    }

    /// The app's spec as its backend sees it: the pod's namespaces and resolver files.
    pub(crate) fn join_pod(&self, pod: &PodRecord, prepared: &mut ContainerSpec) {
        prepared.network_namespace = pod.network_namespace.clone();
        prepared.mounts.extend(pod.mounts.iter().cloned());
        prepared.pod_namespaces = Some(self.pod_namespaces(&pod.id));
    }

    /// gc: pods whose create or removal died (nobody holds their lock) are removed, apps and
    /// all; one line per pod.
    pub(crate) async fn collect_pods(
        self: &Arc<Self>,
        dry_run: bool,
    ) -> Result<Vec<(String, Result<()>)>> {
        let mut done = Vec::new();
        for pod in self.pods()? {
            let why = match pod.phase {
                PodPhase::Created => continue,
                PodPhase::Creating => "the create that did not finish",
                PodPhase::Removing => "the removal that did not finish",
            };
            let object = ObjectRef::Pod(&pod.id);
            let Some(token) = self.store.try_lock_object(&object, LockMode::Exclusive)? else {
                continue; // still running
            };
            self.store.unlock(&token)?;
            let what = format!("pod {} ({}): {why}", pod.name, short(&pod.id));
            let result = if dry_run {
                Ok(())
            } else {
                self.remove_pod(&pod, true).await
            };
            done.push((what, result));
        }
        Ok(done)
    }

    /// The ids of every pod, for gc's view of what still owns network state.
    pub(crate) fn pod_ids(&self) -> Vec<String> {
        self.pods()
            .map(|pods| pods.into_iter().map(|p| p.id).collect())
            .unwrap_or_default()
    }
}
