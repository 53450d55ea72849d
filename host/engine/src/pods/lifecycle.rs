//! A pod's life, rkt's stage0 verbs: prepare (check and record), start (infra, network, apps),
//! stop, rm and gc. Every step that changes a pod records its phase first and holds the pod's
//! lock, so a killed one is finished or undone by the next command or by gc.

use std::sync::Arc;
use std::time::Duration;

use berth_core::pod::{
    EnvSources, PodApp, app_name_from_image, check_os_arch, check_unique_app_names,
};
use berth_core::{
    Capabilities, Capability, Error, ErrorKind, Item, LockMode, NetworkNamespace, Object,
    ObjectRef, RemoveOptions, Result, StopOptions, Survives,
};
use chrono::Utc;

use super::{
    AppRecord, AppRequest, InfraState, NAMES_LOCK, PodPhase, PodRecord, PodSpec, infra, watch,
};
use berth_plugins::Hook;

use crate::{CreateOptions, Engine, Policy, short};

impl Engine {
    /// `berth pod create`: a pod with no apps yet, started.
    pub async fn create_pod(self: &Arc<Self>, spec: PodSpec) -> Result<PodRecord> {
        self.run_pod(spec, Vec::new()).await
    }

    /// `berth pod run`: prepare, then start with every app.
    pub async fn run_pod(
        self: &Arc<Self>,
        spec: PodSpec,
        apps: Vec<AppRequest>,
    ) -> Result<PodRecord> {
        // Recorded `creating` until it runs: a kill anywhere is gc's to undo, not a prepared pod.
        let pod = self.record_pod(spec, apps, PodPhase::Creating).await?;
        match self.start_pod_from(&pod, PodPhase::Creating).await {
            Ok(pod) => Ok(pod),
            Err(e) => {
                let apps = self.app_records(&pod.id).unwrap_or_default();
                if let Err(undo) = self.take_down_pod(&pod, true).await {
                    tracing::warn!(pod = %pod.id, error = %undo, "cannot undo a failed pod run; `berth gc` retries");
                }
                let policy = self.policies.all()?;
                let reason = e.to_string();
                let failed = Hook::CreateFailed;
                tell(
                    policy.as_deref(),
                    failed,
                    &pod.spec,
                    &apps,
                    Some(&pod.id),
                    Some(&reason),
                )?;
                Err(e)
            }
        }
    }

    /// `berth pod prepare`: rkt's checks (app names, the images' os and arch, environment
    /// precedence, MergeMounts) and the records of the pod (phase `prepared`) and its apps.
    pub async fn prepare_pod(
        self: &Arc<Self>,
        spec: PodSpec,
        apps: Vec<AppRequest>,
    ) -> Result<PodRecord> {
        self.record_pod(spec, apps, PodPhase::Prepared).await
    }

    /// Checks and records a pod and its apps, ending in phase `done`.
    async fn record_pod(
        &self,
        spec: PodSpec,
        apps: Vec<AppRequest>,
        done: PodPhase,
    ) -> Result<PodRecord> {
        let mut spec = spec;
        berth_core::validate::spec(&spec.as_container())?;
        berth_core::namespaces::check_sysctls(&spec.sysctls)?;
        // Name policies name and validate pods as they do containers (kind `pod`), and the
        // backend policy places the pod (its apps go where it is).
        let policy = self.policies.all()?;
        spec.name = crate::pipeline::name_by_policy(
            policy.as_deref(),
            "pod",
            &spec.as_container(),
            || format!("pod-{}", &berth_core::new_id()[..12]),
        )?;
        let backend = self.pod_backend(policy.as_deref(), &spec).await?;
        let apps = self.app_records_for(&spec, &backend, apps).await?;
        tell(policy.as_deref(), Hook::PreCreate, &spec, &apps, None, None)?;

        let id = berth_core::new_id();
        let object = ObjectRef::Pod(&id);
        let token = self.store.lock_object(&object, LockMode::Exclusive)?;
        let mut record = PodRecord {
            id: id.clone(),
            name: spec.name.clone(),
            backend,
            created: Utc::now(),
            phase: PodPhase::Creating,
            exited: None,
            hostname: spec.hostname.clone().unwrap_or_else(|| spec.name.clone()),
            spec,
            network_namespace: NetworkNamespace::Private,
            resolver_mounts: Vec::new(),
            ports: Vec::new(),
        };
        let recorded = (|| {
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
            self.store_pod(&record)?;
            drop(names);
            berth_core::crash::point("pod.create.recorded");
            for app in &apps {
                self.store_app(&id, app)?;
            }
            if done != PodPhase::Creating {
                record.phase = done;
                self.store_pod(&record)?;
            }
            Ok(())
        })();
        if let Err(e) = recorded {
            if record.phase == PodPhase::Creating {
                let _ = self.store.delete_all(&object);
            }
            let _ = self.store.unlock(&token);
            let reason = e.to_string();
            let (failed, spec) = (Hook::CreateFailed, &record.spec);
            tell(policy.as_deref(), failed, spec, &apps, None, Some(&reason))?;
            return Err(e);
        }
        self.store.unlock(&token)?;
        tell(
            policy.as_deref(),
            Hook::PostCreate,
            &record.spec,
            &apps,
            Some(&id),
            None,
        )?;
        Ok(record)
    }

    /// The backend a pod runs on: the backend policy's choice among those that claim pods,
    /// else the one the pod names, else the first that claims pods.
    async fn pod_backend(
        &self,
        policy: Option<&dyn crate::Policy>,
        spec: &PodSpec,
    ) -> Result<String> {
        let chosen = match policy.filter(|p| p.places()) {
            Some(policy) => {
                let mut candidates = self.backends.infos().await;
                candidates.retain(|c| self.backends.can(&c.name, Capability::Pods));
                let mut described = spec.as_container();
                described.backend = spec.backend.clone();
                policy.select_backend(&described, &candidates)?
            }
            None => None,
        };
        let backend = match chosen.or_else(|| spec.backend.clone()) {
            Some(name) => name,
            None => self
                .backends
                .names()
                .find(|b| self.backends.can(b, Capability::Pods))
                .map(str::to_string)
                .ok_or_else(|| Error::NotSupported {
                    operation: "pods".into(),
                    backend: "any configured backend".into(),
                    hint: "configure a native backend".into(),
                })?,
        };
        self.backends
            .require(&backend, Capabilities::of(&[Capability::Pods]))?;
        Ok(backend)
    }

    /// rkt's rules on a manifest's apps, in order: each app's name (given, else from its
    /// image) unique in the pod; its image present on the pod's backend and built for a valid
    /// os/arch; its environment image < inherited < env files < explicit; its mounts merged
    /// with the pod's.
    async fn app_records_for(
        &self,
        pod: &PodSpec,
        backend: &str,
        requests: Vec<AppRequest>,
    ) -> Result<Vec<AppRecord>> {
        let mut apps = Vec::new();
        for (index, request) in requests.into_iter().enumerate() {
            let name = match request.name {
                Some(name) if berth_core::pod::is_ac_name(&name) => name,
                Some(name) => {
                    return Err(Error::invalid(
                        format!("app name {name:?}"),
                        "an app name is lower-case letters and digits joined by single dashes",
                    ));
                }
                None => app_name_from_image(&request.spec.image)?,
            };
            let (mut spec, stops_pod) = (request.spec, request.stops_pod);
            berth_core::validate::spec(&spec)?;
            let image = self
                .backend(backend)?
                .inspect_image(&spec.image)
                .await
                .map_err(|e| e.with_hint(format!("app {name:?} needs it: pull or import it")))?;
            check_os_arch(
                image.os.as_deref(),
                image.architecture.as_deref(),
                image.variant.as_deref(),
            )
            .map_err(|e| {
                Error::invalid(
                    format!("image {:?} of app {name:?}", spec.image),
                    e.to_string(),
                )
            })?;
            let image_env: Vec<(String, String)> = image
                .env
                .iter()
                .filter_map(|e| e.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let merged = EnvSources {
                image: image_env.clone(),
                inherited: request.inherited,
                from_file: request.from_file,
                explicit: spec.env.clone().into_iter().collect(),
            }
            .merge();
            // What the image sets itself stays the image's: the record keeps only the rest.
            spec.env = merged
                .into_iter()
                .filter(|(k, v)| !image_env.iter().any(|(ik, iv)| ik == k && iv == v))
                .collect();
            spec.mounts = berth_core::pod::merge_mounts(&pod.mounts, &spec.mounts);
            spec.name = format!("{}-{name}", pod.name);
            apps.push(AppRecord {
                name,
                index,
                spec,
                container: None,
                stops_pod,
            });
        }
        check_unique_app_names(apps.iter().map(|a| a.name.as_str()))?;
        Ok(apps)
    }

    /// `berth pod start`: the infra process and network of a prepared, exited or dead pod,
    /// then each app's container (made from its record the first time) started in order; on
    /// a running pod, the apps that are not running.
    pub async fn start_pod(self: &Arc<Self>, pod: &PodRecord) -> Result<PodRecord> {
        self.start_pod_from(pod, PodPhase::Prepared).await
    }

    /// `start_pod`, where `creating` is the phase of the create this start finishes (any
    /// other `creating` pod is a create that died).
    async fn start_pod_from(
        self: &Arc<Self>,
        pod: &PodRecord,
        creating: PodPhase,
    ) -> Result<PodRecord> {
        let policy = self.policies.hooks()?;
        let apps = self.app_records(&pod.id)?;
        tell(
            policy.as_deref(),
            Hook::PreStart,
            &pod.spec,
            &apps,
            Some(&pod.id),
            None,
        )?;
        // Held throughout, apps included, so gc never takes a pod that is being started.
        let object = ObjectRef::Pod(&pod.id);
        let token = self.store.lock_object(&object, LockMode::Exclusive)?;
        let started = async {
            let mut record = self.pod_record(&pod.id)?.ok_or_else(|| {
                Error::not_found(Object::Pod, &pod.name).with_hint("see `berth pod ls`")
            })?;
            match record.phase {
                // Running already: what is left is to start the apps that are not.
                PodPhase::Created if self.pod_running(&record) => {}
                PodPhase::Creating if creating != PodPhase::Creating => {
                    return Err(Error::conflict(
                        format!("pod {:?}", record.name),
                        "its create did not finish",
                    )
                    .with_hint("`berth gc` removes it"));
                }
                PodPhase::Removing => {
                    return Err(Error::conflict(
                        format!("pod {:?}", record.name),
                        "its removal did not finish",
                    )
                    .with_hint("`berth gc` finishes it"));
                }
                _ => self.start_infra(&mut record).await?,
            }
            self.start_apps(&record).await?;
            // A create stays `creating` until its last app runs: killed before, gc undoes it.
            record.phase = PodPhase::Created;
            self.store_pod(&record)?;
            Ok(record)
        }
        .await;
        self.store.unlock(&token)?;
        let started = started?;
        tell(
            policy.as_deref(),
            Hook::PostStart,
            &pod.spec,
            &apps,
            Some(&pod.id),
            None,
        )?;
        Ok(started)
    }

    /// The infra process and network of a pod that has none running; apps may join from
    /// here on (a prepared pod reads `created` now, a create's stays `creating`).
    async fn start_infra(&self, record: &mut PodRecord) -> Result<()> {
        // What a dead infra process or a killed start left comes down first.
        self.end_infra(record).await?;
        if let Err(e) = self.make_pod(record).await {
            if let Err(undo) = self.end_infra(record).await {
                tracing::warn!(pod = %record.id, error = %undo, "cannot undo a failed pod start; `berth gc` retries");
            }
            return Err(e);
        }
        if record.phase != PodPhase::Creating {
            record.phase = PodPhase::Created;
        }
        record.exited = None;
        self.store_pod(record)
    }

    /// Each app's container, made from its record the first time, started in order.
    async fn start_apps(self: &Arc<Self>, record: &PodRecord) -> Result<()> {
        for app in self.app_records(&record.id)? {
            let container = match self.app_container(&app) {
                Some(container) => container,
                None => {
                    let mut spec = app.spec.clone();
                    spec.pod = Some(record.id.clone());
                    let options = CreateOptions {
                        app: Some(app.name.clone()),
                        ..CreateOptions::default()
                    };
                    self.create(spec, options).await?
                }
            };
            if !self.info(&container).await.state.is_running() {
                self.start(&container).await?;
                if app.stops_pod {
                    self.watch_app(record, &container).await?;
                }
            }
        }
        Ok(())
    }

    /// Starts the watcher that stops the pod when `container`, an app marked
    /// `stop-pod-on-exit`, ends (see [`watch`]).
    async fn watch_app(
        &self,
        record: &PodRecord,
        container: &crate::ContainerRecord,
    ) -> Result<()> {
        let process =
            |pid: u32| infra::start_time(pid).map(|started| watch::Process { pid, started });
        let infra = self
            .infra_state(&record.id)?
            .map(|state| watch::Process {
                pid: state.pid,
                started: state.started,
            })
            .ok_or_else(|| {
                Error::conflict(
                    format!("pod {:?}", record.name),
                    "its infra process is gone",
                )
            })?;
        // An app that has already ended leaves no process: the watcher then stops the pod
        // at once, as it would have on seeing it end.
        let app = self
            .info(container)
            .await
            .pid
            .and_then(process)
            .unwrap_or(watch::Process { pid: 0, started: 0 });
        let config =
            Some(self.config.source.as_str()).filter(|s| std::path::Path::new(s).is_file());
        watch::spawn(&record.id, app, infra, config)
    }

    /// Whether `pod` still runs on the infra process `infra`: what a watcher's stop asks, so
    /// that a pod stopped and started again since its app ended is left alone.
    pub fn pod_runs_on(&self, pod: &PodRecord, infra: watch::Process) -> Result<bool> {
        Ok(self
            .infra_state(&pod.id)?
            .is_some_and(|state| state.pid == infra.pid && state.started == infra.started))
    }

    async fn make_pod(&self, record: &mut PodRecord) -> Result<()> {
        let mut spec = record.spec.as_container();
        spec.hostname = Some(record.hostname.clone());
        spec.mounts.clear();
        let plan = self
            .networks
            .plan(&record.id, &spec, Survives::PowerLoss, |id| self.holder(id))?;
        record.network_namespace = plan.namespace;
        record.resolver_mounts = plan.mounts;
        record.ports = plan.ports;
        self.store_pod(record)?;
        let pid = infra::spawn(&record.id, &record.hostname, record.spec.share_pid)?;
        let started = infra::start_time(pid).unwrap_or_default();
        // Recorded before the namespace files, so a kill from here on leaves a process gc finds.
        self.store.store_item(
            &ObjectRef::Pod(&record.id),
            Item::State,
            &InfraState { pid, started },
        )?;
        let files = self.namespace_files(&record.id);
        let dir = self.namespace_dir();
        let pid_file = files.pid.as_ref().filter(|_| record.spec.share_pid);
        let shared = [("ipc", &files.ipc), ("uts", &files.uts)];
        // The PID namespace the infra process made is its children's, not its own.
        for (kind, file) in shared
            .into_iter()
            .chain(pid_file.map(|p| ("pid_for_children", p)))
        {
            let name = file
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            berth_core::namespaces::bind(&infra::namespace(pid, kind), &dir, &name)?;
        }
        berth_core::crash::point("pod.create.infra");
        self.networks.attach(&record.id).await?;
        let net = match &record.network_namespace {
            NetworkNamespace::Path(path) => Some(path.as_path()),
            _ => None,
        };
        berth_core::namespaces::set_sysctls(&record.spec.sysctls, &files.ipc, net)
    }

    /// Ends the infra process and takes down what it held (rkt's MountGC of the pod): the
    /// namespace files, the network attachments (CNI DEL) and the pod's port reservations.
    /// Idempotent, so it serves stop, a failed start, gc and removal alike.
    async fn end_infra(&self, record: &PodRecord) -> Result<()> {
        if let Some(state) = self.infra_state(&record.id)? {
            infra::kill(&record.id, state.pid, state.started);
        }
        for pid in infra::find(&record.id) {
            if let Some(started) = infra::start_time(pid) {
                infra::kill(&record.id, pid, started);
            }
        }
        let files = self.namespace_files(&record.id);
        for file in [Some(&files.ipc), Some(&files.uts), files.pid.as_ref()]
            .into_iter()
            .flatten()
        {
            berth_core::namespaces::remove(file)?;
        }
        berth_core::namespaces::release_dir(&self.namespace_dir())?;
        self.networks.detach(&record.id).await?;
        self.networks.release(&record.id)?;
        self.store
            .remove_item(&ObjectRef::Pod(&record.id), Item::State)
    }

    /// `berth pod stop`: every running app stopped (`force`: killed at once, no grace
    /// period), then the infra process and what it held; the pod reads `exited`.
    pub async fn stop_pod(
        self: &Arc<Self>,
        pod: &PodRecord,
        timeout: Duration,
        force: bool,
    ) -> Result<()> {
        let policy = self.policies.hooks()?;
        let apps = self.app_records(&pod.id)?;
        tell(
            policy.as_deref(),
            Hook::PreStop,
            &pod.spec,
            &apps,
            Some(&pod.id),
            None,
        )?;
        self.end_pod(pod, timeout, force).await?;
        tell(
            policy.as_deref(),
            Hook::PostStop,
            &pod.spec,
            &apps,
            Some(&pod.id),
            None,
        )
    }

    /// `stop_pod` without telling plugins: what gc does to a pod found dead.
    async fn end_pod(
        self: &Arc<Self>,
        pod: &PodRecord,
        timeout: Duration,
        force: bool,
    ) -> Result<()> {
        let object = ObjectRef::Pod(&pod.id);
        let token = self.store.lock_object(&object, LockMode::Exclusive)?;
        let result = async {
            let mut record = self.pod_record(&pod.id)?.ok_or_else(|| {
                Error::not_found(Object::Pod, &pod.name).with_hint("see `berth pod ls`")
            })?;
            if matches!(record.phase, PodPhase::Prepared | PodPhase::Exited) {
                return Ok(());
            }
            let options = StopOptions {
                signal: if force { libc::SIGKILL } else { libc::SIGTERM },
                timeout,
                force: true,
            };
            for app in self.app_records(&record.id)? {
                if let Some(container) = self.app_container(&app)
                    && self.info(&container).await.state.is_running()
                {
                    self.stop(&container, &options).await?;
                }
            }
            self.end_infra(&record).await?;
            record.phase = PodPhase::Exited;
            record.exited = Some(Utc::now());
            self.store_pod(&record)
        }
        .await;
        let _ = self.store.unlock(&token);
        result
    }

    /// `berth pod rm`: refused (73) while an app runs unless `force`; then every app, the
    /// infra process, the namespaces, the networks and the records go. Marked `removing`
    /// first, so a killed removal is finished by the next one or by gc.
    pub async fn remove_pod(self: &Arc<Self>, pod: &PodRecord, force: bool) -> Result<()> {
        let policy = self.policies.hooks()?;
        let apps = self.app_records(&pod.id)?;
        tell(
            policy.as_deref(),
            Hook::PreRemove,
            &pod.spec,
            &apps,
            Some(&pod.id),
            None,
        )?;
        self.take_down_pod(pod, force).await?;
        tell(
            policy.as_deref(),
            Hook::PostRemove,
            &pod.spec,
            &apps,
            Some(&pod.id),
            None,
        )
    }

    /// `remove_pod` without telling plugins: what undoes a failed run, and gc.
    async fn take_down_pod(self: &Arc<Self>, pod: &PodRecord, force: bool) -> Result<()> {
        let object = ObjectRef::Pod(&pod.id);
        let token = self.store.lock_object(&object, LockMode::Exclusive)?;
        let result = async {
            let apps: Vec<_> = self
                .app_records(&pod.id)?
                .iter()
                .filter_map(|a| self.app_container(a))
                .collect();
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
            self.store_pod(&record)?;
            berth_core::crash::point("pod.remove.marked");
            for app in apps {
                match self.remove(&app, RemoveOptions::forced()).await {
                    Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            self.end_infra(&record).await?;
            self.store.delete_all(&object)
        }
        .await;
        let _ = self.store.unlock(&token);
        result
    }

    /// gc: pods whose create or removal died (nobody holds their lock) are removed, apps and
    /// all, and what a start that died left of a prepared or exited pod is taken down; one
    /// line per pod.
    pub(crate) async fn collect_pods(
        self: &Arc<Self>,
        dry_run: bool,
    ) -> Result<Vec<(String, Result<()>)>> {
        let mut done = Vec::new();
        for pod in self.pods()? {
            let why = match pod.phase {
                PodPhase::Creating => "the create that did not finish",
                PodPhase::Removing => "the removal that did not finish",
                PodPhase::Prepared | PodPhase::Exited if self.half_started(&pod)? => {
                    "infra process and network of the start that did not finish"
                }
                _ => continue,
            };
            if !self.unlocked(&pod)? {
                continue; // still going
            }
            let what = format!("pod {} ({}): {why}", pod.name, short(&pod.id));
            if matches!(pod.phase, PodPhase::Prepared | PodPhase::Exited) {
                let result = if dry_run {
                    Ok(())
                } else {
                    self.end_infra(&pod).await
                };
                done.push((what, result));
                continue;
            }
            let result = if dry_run {
                Ok(())
            } else {
                self.take_down_pod(&pod, true).await
            };
            done.push((what, result));
        }
        Ok(done)
    }

    /// `berth pod gc`, rkt's: a pod found dead (its infra process gone) is stopped and marked
    /// exited now, and a pod exited longer ago than `grace` is removed, apps and all. What
    /// it did, one line per pod and step: `stop` or `remove`, the pod and why.
    pub async fn gc_pods(
        self: &Arc<Self>,
        grace: Duration,
        dry_run: bool,
    ) -> Result<Vec<(&'static str, String, Result<()>)>> {
        let mut done: Vec<_> = self
            .collect_pods(dry_run)
            .await?
            .into_iter()
            .map(|(what, result)| ("remove", what, result))
            .collect();
        let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        for mut pod in self.pods()? {
            let label = format!("pod {} ({})", pod.name, short(&pod.id));
            if pod.phase == PodPhase::Created && !self.pod_running(&pod) && self.unlocked(&pod)? {
                let result = if dry_run {
                    Ok(())
                } else {
                    let stopped = self.end_pod(&pod, Duration::ZERO, true).await;
                    pod = self.pod_record(&pod.id)?.unwrap_or(pod);
                    stopped
                };
                done.push((
                    "stop",
                    format!("{label}: its infra process is gone"),
                    result,
                ));
            }
            let expired = pod.phase == PodPhase::Exited
                && pod.exited.is_some_and(|at| Utc::now() - at >= grace);
            if expired {
                let result = if dry_run {
                    Ok(())
                } else {
                    self.take_down_pod(&pod, true).await
                };
                done.push((
                    "remove",
                    format!("{label}: exited longer ago than the grace period"),
                    result,
                ));
            }
        }
        Ok(done)
    }

    /// Whether a pod that is not running still has an infra process, its record or its
    /// network: what a start killed half-way leaves.
    fn half_started(&self, pod: &PodRecord) -> Result<bool> {
        Ok(self.infra_state(&pod.id)?.is_some()
            || !infra::find(&pod.id).is_empty()
            || self.networks.is_attached(&pod.id))
    }

    /// Whether nobody holds the pod's lock (no command is working on it).
    fn unlocked(&self, pod: &PodRecord) -> Result<bool> {
        let object = ObjectRef::Pod(&pod.id);
        match self.store.try_lock_object(&object, LockMode::Exclusive)? {
            Some(token) => {
                self.store.unlock(&token)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// Tells pod-hook policy about `hook` of the pod `spec` and its `apps`: a `pre-*` refusal is
/// the step's error; what `post-*` hooks and `create-failed` say is only logged.
fn tell(
    policy: Option<&dyn Policy>,
    hook: Hook,
    spec: &PodSpec,
    apps: &[AppRecord],
    id: Option<&str>,
    reason: Option<&str>,
) -> Result<()> {
    let Some(policy) = policy else {
        return Ok(());
    };
    let apps: Vec<PodApp> = apps
        .iter()
        .map(|a| PodApp {
            name: a.name.clone(),
            spec: a.spec.clone(),
        })
        .collect();
    let told = policy.on_pod_event(hook, spec, &apps, id, reason);
    if hook.is_pre() {
        return told;
    }
    crate::pipeline::observe(told);
    Ok(())
}
