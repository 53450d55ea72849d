//! Pods: apps (containers) that share one set of namespaces, the rkt way. A pod's IPC and UTS
//! namespaces are made by its infra process ([`infra`]) and held as namespace files; its
//! network namespace is the engine's networking for the pod's id, as a container's would be.
//! Apps are containers of the pod (from its manifest, or `berth run --pod`): they join those
//! namespaces by path and read the pod's /etc/hosts, resolv.conf and hostname.
//!
//! Records use the store's item layer: the pod's config (persistent), its apps' records under
//! it, and its infra process (volatile: after a reboot the pod reads as dead, not as
//! corrupt). The verbs are in [`lifecycle`](self::lifecycle); the manifest in [`manifest`].

pub mod infra;
mod lifecycle;
pub mod manifest;
pub mod watch;

pub use berth_core::pod::PodSpec;

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_core::{
    ContainerSpec, Error, Item, LockMode, Mount, NetworkAttachment, NetworkNamespace, Object,
    ObjectRef, PodCgroup, PodJoin, PortMapping, Result,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Engine;

/// One app a manifest asks for, before rkt's rules made it a container spec.
#[derive(Debug, Clone, Default)]
pub struct AppRequest {
    /// Its name in the pod; rkt's default (from the image) when not given.
    pub name: Option<String>,
    /// Its container; `env` holds the explicit variables (`-e`, the manifest's `env`).
    pub spec: ContainerSpec,
    /// `--inherit-env`: fills what neither the image nor anything else sets.
    pub inherited: Vec<(String, String)>,
    /// `--env-file` and the manifest's `env-file`, in order: override the image.
    pub from_file: Vec<(String, String)>,
    /// The manifest's `stop-pod-on-exit`: this app's exit stops the pod.
    pub stops_pod: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PodPhase {
    /// Its create has not finished (or died): gc removes it once nobody holds its lock.
    #[default]
    Creating,
    /// Checked and recorded with its apps (`pod prepare`); `pod start` runs it.
    Prepared,
    /// Started: running while its infra process lives, dead once it is gone.
    Created,
    /// Stopped (`pod stop`, or found dead by `pod gc`): apps ended, infra gone.
    Exited,
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
    /// When it stopped or was found dead: `pod gc`'s grace period counts from here.
    #[serde(default)]
    pub exited: Option<DateTime<Utc>>,
    pub hostname: String,
    pub spec: PodSpec,
    /// Where its apps' network comes from, and the resolver files they mount.
    pub network_namespace: NetworkNamespace,
    pub resolver_mounts: Vec<Mount>,
    pub ports: Vec<PortMapping>,
}

/// An app's record under its pod: the spec its container is made from, and the container
/// once it exists.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AppRecord {
    pub name: String,
    /// Its place in the pod: apps start in this order.
    pub index: usize,
    pub spec: ContainerSpec,
    pub container: Option<String>,
    /// Its exit stops the pod (the manifest's `stop-pod-on-exit`).
    #[serde(default)]
    pub stops_pod: bool,
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
    /// `running` while its infra process lives, `dead` once it is gone, `prepared`,
    /// `exited`, or the phase of a create or removal that has not finished.
    pub state: String,
    pub backend: String,
    pub created: DateTime<Utc>,
    pub exited: Option<DateTime<Utc>>,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    pub infra_pid: Option<u32>,
    pub networks: Vec<NetworkAttachment>,
    pub ports: Vec<PortMapping>,
    pub apps: Vec<AppInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AppInfo {
    pub name: String,
    /// Its container, once created.
    pub id: Option<String>,
    pub image: String,
    /// The container's state, or `prepared` before it exists.
    pub state: String,
    pub exit_code: Option<i32>,
}

const NAMES_LOCK: &str = "names";

impl Engine {
    fn namespace_dir(&self) -> PathBuf {
        self.store.run_dir().join("pod-namespaces")
    }

    /// The namespace files an app of pod `id` joins (the PID namespace's, which exists only
    /// when the pod shares one, is always named).
    fn namespace_files(&self, id: &str) -> PodJoin {
        let dir = self.namespace_dir();
        PodJoin {
            ipc: dir.join(format!("{id}.ipc")),
            uts: dir.join(format!("{id}.uts")),
            pid: Some(dir.join(format!("{id}.pid"))),
            cgroup: None,
        }
    }

    /// Every pod record, newest first.
    pub fn pods(&self) -> Result<Vec<PodRecord>> {
        let mut pods = Vec::new();
        for id in self
            .store
            .list(berth_core::Durability::Persistent, "pods")?
        {
            if let Some(pod) = self.pod_record(&id)? {
                pods.push(pod);
            }
        }
        pods.sort_by_key(|p| std::cmp::Reverse(p.created));
        Ok(pods)
    }

    fn pod_record(&self, id: &str) -> Result<Option<PodRecord>> {
        self.store.load_item(&ObjectRef::Pod(id), Item::Config)
    }

    fn store_pod(&self, record: &PodRecord) -> Result<()> {
        self.store
            .store_item(&ObjectRef::Pod(&record.id), Item::Config, record)
    }

    /// A pod by exact id, exact name, or unique id prefix.
    pub fn resolve_pod(&self, reference: &str) -> Result<PodRecord> {
        let pods = self.pods()?;
        crate::records::find_unique(&pods, reference, "pod", |p| (&p.id, &p.name))
            .cloned()
            .map_err(|e| match e {
                None => Error::not_found(Object::Pod, reference).with_hint("see `berth pod ls`"),
                Some(e) => e,
            })
    }

    fn infra_state(&self, id: &str) -> Result<Option<InfraState>> {
        self.store.load_item(&ObjectRef::Pod(id), Item::State)
    }

    /// Whether the pod's infra process lives.
    pub fn pod_running(&self, pod: &PodRecord) -> bool {
        matches!(self.infra_state(&pod.id), Ok(Some(s)) if infra::alive(&pod.id, s.pid, s.started))
    }

    /// The pod's app records, in their start order.
    pub fn app_records(&self, pod: &str) -> Result<Vec<AppRecord>> {
        let mut apps = Vec::new();
        for name in self.store.apps(pod)? {
            let object = ObjectRef::App { pod, app: &name };
            if let Some(app) = self.store.load_item::<AppRecord>(&object, Item::Config)? {
                apps.push(app);
            }
        }
        apps.sort_by_key(|a| a.index);
        Ok(apps)
    }

    fn store_app(&self, pod: &str, app: &AppRecord) -> Result<()> {
        let object = ObjectRef::App {
            pod,
            app: &app.name,
        };
        self.store.store_item(&object, Item::Config, app)
    }

    /// The container of an app record, if it was created and still exists.
    fn app_container(&self, app: &AppRecord) -> Option<crate::ContainerRecord> {
        let id = app.container.as_deref()?;
        self.records
            .resolve(id)
            .ok()
            .filter(|r| r.id == id && r.phase != crate::Phase::Unreadable)
    }

    /// The app `name` of the pod (the only one when not given), as a container to exec in.
    pub fn pod_app(&self, pod: &PodRecord, name: Option<&str>) -> Result<crate::ContainerRecord> {
        let apps = self.app_records(&pod.id)?;
        let app = match name {
            Some(name) => apps.iter().find(|a| a.name == name).ok_or_else(|| {
                Error::not_found(
                    Object::Container,
                    format!("app {name:?} of pod {:?}", pod.name),
                )
                .with_hint(format!("see `berth pod inspect {}`", pod.name))
            })?,
            None => match apps.as_slice() {
                [only] => only,
                [] => {
                    return Err(
                        Error::conflict(format!("pod {:?}", pod.name), "it has no apps")
                            .with_hint("add one with `berth run --pod`"),
                    );
                }
                _ => {
                    let names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
                    return Err(Error::invalid(
                        format!("pod {:?}", pod.name),
                        format!("it has several apps ({})", names.join(", ")),
                    )
                    .with_hint("choose one with --app NAME"));
                }
            },
        };
        self.app_container(app).ok_or_else(|| {
            Error::conflict(
                format!("app {:?} of pod {:?}", app.name, pod.name),
                "it has no container yet",
            )
            .with_hint(format!("start the pod with `berth pod start {}`", pod.name))
        })
    }

    /// What `pod ls` and `pod inspect` show.
    pub async fn pod_info(&self, pod: &PodRecord) -> PodInfo {
        let state = match pod.phase {
            PodPhase::Creating => "creating",
            PodPhase::Prepared => "prepared",
            PodPhase::Exited => "exited",
            PodPhase::Removing => "removing",
            PodPhase::Created if self.pod_running(pod) => "running",
            PodPhase::Created => "dead",
        };
        let mut apps = Vec::new();
        for app in self.app_records(&pod.id).unwrap_or_default() {
            let (state, exit_code, id) = match self.app_container(&app) {
                Some(container) => {
                    let info = self.info(&container).await;
                    (info.state.to_string(), info.exit_code, Some(container.id))
                }
                None => ("prepared".to_string(), None, None),
            };
            apps.push(AppInfo {
                name: app.name,
                id,
                image: app.spec.image,
                state,
                exit_code,
            });
        }
        let (networks, _) = self.networks.status(&pod.id);
        PodInfo {
            id: pod.id.clone(),
            name: pod.name.clone(),
            state: state.to_string(),
            backend: pod.backend.clone(),
            created: pod.created,
            exited: pod.exited,
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
        let started = matches!(pod.phase, PodPhase::Created | PodPhase::Creating);
        if !started || !self.pod_running(&pod) {
            return Err(Error::conflict(
                format!("pod {:?}", pod.name),
                "it is not running (its infra process is gone)",
            )
            .with_hint(format!(
                "start it again with `berth pod start {0}`, or remove it with `berth pod rm -f {0}`",
                pod.name
            )));
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

    /// Records container `id` as app `app` of `pod` (under the app name's lock, so two apps
    /// never take one name): the prepared app of that name, or a new one (`run --pod`, named after
    /// its container by appc's rule).
    pub(crate) fn register_app(
        &self,
        pod: &PodRecord,
        id: &str,
        spec: &ContainerSpec,
        app: Option<&str>,
    ) -> Result<()> {
        let name = match app {
            Some(name) => name.to_string(),
            None => berth_core::pod::app_name_from_image(&spec.name).map_err(|_| {
                Error::invalid(
                    format!("container name {:?} as an app name", spec.name),
                    "an app name is lower-case letters and digits joined by single dashes",
                )
                .with_hint("give the app a --name like `web` or `db-1`")
            })?,
        };
        // The name's own lock: the pod's may be held by the `pod start` creating this app.
        let token = self.store.lock_object(
            &ObjectRef::App {
                pod: &pod.id,
                app: &name,
            },
            LockMode::Exclusive,
        )?;
        let result = (|| {
            let apps = self.app_records(&pod.id)?;
            let known = apps.iter().find(|a| a.name == name);
            let stops_pod = known.is_some_and(|a| a.stops_pod);
            let index = match known {
                Some(taken)
                    if taken.container.as_deref() != Some(id)
                        && self.app_container(taken).is_some() =>
                {
                    return Err(Error::AlreadyExists {
                        kind: Object::Container,
                        name: format!("app {name:?} of pod {:?}", pod.name),
                        hint: "give each app its own name".into(),
                    });
                }
                Some(taken) => taken.index,
                None => apps.iter().map(|a| a.index + 1).max().unwrap_or(0),
            };
            self.store_app(
                &pod.id,
                &AppRecord {
                    name: name.clone(),
                    index,
                    spec: spec.clone(),
                    container: Some(id.to_string()),
                    stops_pod,
                },
            )
        })();
        self.store.unlock(&token)?;
        result
    }

    /// Takes container `id` out of `pod`: its app record goes (`berth rm` of an app), or,
    /// with `keep`, stays without a container, to be made again at the pod's next start (a
    /// prepared app whose create failed).
    pub(crate) fn unregister_app(&self, pod: &str, id: &str, keep: bool) -> Result<()> {
        if self.pod_record(pod)?.is_none() {
            return Ok(());
        }
        for mut app in self.app_records(pod)? {
            if app.container.as_deref() != Some(id) {
                continue;
            }
            if keep {
                app.container = None;
                self.store_app(pod, &app)?;
            } else {
                self.store.delete_all(&ObjectRef::App {
                    pod,
                    app: &app.name,
                })?;
            }
        }
        Ok(())
    }

    /// The app's spec as its backend sees it: the pod's namespaces, cgroup and resolver files.
    pub(crate) fn join_pod(&self, pod: &PodRecord, prepared: &mut ContainerSpec) {
        prepared.network_namespace = pod.network_namespace.clone();
        prepared.mounts.extend(pod.resolver_mounts.iter().cloned());
        let files = self.namespace_files(&pod.id);
        prepared.pod_join = Some(PodJoin {
            pid: files.pid.clone().filter(|_| pod.spec.share_pid),
            cgroup: Some(PodCgroup {
                name: format!("pod-{}", pod.id),
                limits: pod.spec.limits.clone(),
            }),
            ..files
        });
    }

    /// The ids of every pod, for gc's view of what still owns network state.
    pub(crate) fn pod_ids(&self) -> Vec<String> {
        self.pods()
            .map(|pods| pods.into_iter().map(|p| p.id).collect())
            .unwrap_or_default()
    }
}
