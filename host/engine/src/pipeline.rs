//! The lifecycle pipeline: create, start, stop and remove, each step between its hooks.
//!
//! A create takes effect in this order, and undoes in the reverse one when a later step
//! fails: the name is claimed (a record in phase `creating`) before placement and before any
//! hook that may have side effects runs; the backend is written into the claim before the
//! backend is asked to create; the claim becomes the container's record once the backend has
//! the container. On failure berth removes what the backend made, gives the name back and,
//! once `pre-create` hooks have run, tells them `create-failed` with the reason so a plugin
//! can release what it provisioned. Pre-hooks may refuse their step; post-hooks only observe.

use std::sync::Arc;

use berth_core::{
    ContainerSpec, Error, ErrorKind, RemoveOptions, Result, StopOptions, capability, crash,
};
use berth_plugins::Hook;

use crate::records::{Claim, ContainerRecord, Phase, remove_leftover};

/// How to create a container, beyond its spec.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// `run --rm`: removed once it exits (by gc, if the `run` that waits for it dies).
    pub auto_remove: bool,
    /// For an app of a pod: its name in the pod (by default, its container's name).
    pub app: Option<String>,
}
use crate::{Engine, Policy};

/// `spec.name`, else the name policy's for an object of `kind`, else `default()`; checked
/// against the host's rule and every name policy.
pub(crate) fn name_by_policy(
    policy: Option<&dyn Policy>,
    kind: &str,
    spec: &ContainerSpec,
    default: impl FnOnce() -> String,
) -> Result<String> {
    let name = match (&spec.name, policy) {
        (name, _) if !name.is_empty() => name.clone(),
        (_, Some(p)) => p.generate_name(kind, spec)?.unwrap_or_else(default),
        (_, None) => default(),
    };
    berth_core::validate::container_name(&name)?;
    if let Some(p) = policy {
        p.validate_name(kind, &name)?;
    }
    Ok(name)
}

/// How far a create got before it failed, which decides what undoing it means.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reached {
    /// Nothing a hook could have provisioned.
    Claimed,
    /// `pre-create` hooks ran (any of them may have provisioned something).
    Hooked,
    /// The backend was asked to create the container.
    BackendAsked,
}

/// Once `pre-create` hooks have run, they are told the create failed and why, so they can
/// release what they provisioned.
fn tell_create_failed(
    policy: Option<&dyn Policy>,
    id: &str,
    spec: &ContainerSpec,
    reached: Reached,
    error: &Error,
) {
    if reached >= Reached::Hooked
        && let Some(p) = policy
    {
        let asked = (reached >= Reached::BackendAsked).then_some(id);
        p.create_failed(spec, asked, &error.to_string());
    }
}

/// Where an attempt at a create goes, and why there.
#[derive(Debug, Clone, Default)]
struct Placement {
    backend: String,
    chosen: Chosen,
    /// As its last probe said (a requested backend is not probed first).
    healthy: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Chosen {
    /// The first healthy backend in config order.
    #[default]
    Default,
    /// The backend policy's pick.
    Policy,
    /// The user's `--backend`: never replaced by a fallback.
    Requested,
    /// `[placement] fallback`'s next, after the one before it failed.
    Fallback,
}

impl Engine {
    /// Name policy, name claim, backend policy, capability check, pre-create hooks, services,
    /// backend create, post-create.
    pub async fn create(
        self: &Arc<Self>,
        mut spec: ContainerSpec,
        options: CreateOptions,
    ) -> Result<ContainerRecord> {
        berth_core::validate::spec(&spec)?;
        let policy = self.policies.all()?;
        self.name(policy.as_deref(), &mut spec)?;
        let mut claim = self
            .records
            .claim(&spec, options.auto_remove, |stale| async move {
                self.remove_leftover(&stale).await
            })
            .await?;
        crash::point("create.claimed");
        let before_placement = spec.clone();
        let mut reached = Reached::Claimed;
        let mut placement = Placement::default();
        let mut tried = Vec::new();
        let created = loop {
            let attempt = self
                .create_claimed(
                    policy.as_deref(),
                    &mut claim,
                    &mut spec,
                    options.app.as_deref(),
                    &mut reached,
                    &mut placement,
                )
                .await;
            let Err(e) = attempt else { break Ok(()) };
            if !self.may_fall_back(&spec, &placement, reached, &e) {
                break Err(e);
            }
            tried.push(placement.backend.clone());
            let Some(next) = self
                .fallback(policy.as_deref(), &before_placement, &tried)
                .await
            else {
                break Err(e);
            };
            self.undo_attempt(policy.as_deref(), &claim.record.id, &spec, reached, &e);
            let why = format!("{} -> {next}: {e}", placement.backend);
            tracing::warn!(
                "backend {:?} cannot take container {:?} ({e}): falling back to {next:?} \
                 ([placement] fallback)",
                placement.backend,
                before_placement.name
            );
            berth_plugins::events::record_host_decision(
                &self.config.host,
                "fallback",
                &before_placement.name,
                why,
            );
            crash::point("create.fell-back");
            spec = before_placement.clone();
            reached = Reached::Claimed;
            placement = Placement {
                backend: next,
                chosen: Chosen::Fallback,
                healthy: true,
            };
        };
        let outcome = match created {
            Ok(()) => {
                crash::point("create.backend-created");
                self.records.finish(&claim)
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(record) => {
                drop(claim);
                if let Some(p) = &policy {
                    observe(p.on_event(Hook::PostCreate, &mut spec, Some(&record.id)));
                }
                Ok(record)
            }
            Err(e) => {
                self.undo_create(policy.as_deref(), claim, &spec, &options, reached, &e)
                    .await;
                Err(e)
            }
        }
    }

    /// The name the user gave, else the name policy's, else berth's default; checked against
    /// the host's rule and every name policy.
    fn name(&self, policy: Option<&dyn Policy>, spec: &mut ContainerSpec) -> Result<()> {
        spec.name = name_by_policy(policy, "container", spec, default_name)?;
        Ok(())
    }

    /// One attempt at creating the claimed container: on the backend `placement` names when
    /// it is a fallback, else on the one placement chooses now (and writes into it).
    async fn create_claimed(
        &self,
        policy: Option<&dyn Policy>,
        claim: &mut Claim,
        spec: &mut ContainerSpec,
        app: Option<&str>,
        reached: &mut Reached,
        placement: &mut Placement,
    ) -> Result<()> {
        let pod = self.pod_for_app(spec)?;
        if let Some(pod) = &pod {
            self.register_app(pod, &claim.record.id, spec, app)?;
        }
        if placement.chosen != Chosen::Fallback {
            *placement = self.choose_backend(policy, spec).await?;
        }
        let backend_name = placement.backend.clone();
        // A policy may choose an unhealthy backend; with a fallback chain, it is passed over
        // before any hook runs.
        if !placement.healthy && !self.config.placement.fallback.is_empty() {
            return Err(Error::Unavailable {
                service: format!("backend {backend_name:?}"),
                endpoint: String::new(),
                reason: "its health probe failed".into(),
                hint: "see `berth backend ls`".into(),
            });
        }
        if let Some(pod) = &pod
            && backend_name != pod.backend
        {
            return Err(Error::invalid(
                format!("backend {backend_name:?} for an app of pod {:?}", pod.name),
                format!("the pod runs on {:?}", pod.backend),
            ));
        }
        self.backends
            .require(&backend_name, capability::needed_by_spec(spec))?;
        spec.backend = Some(backend_name.clone());

        if let Some(p) = policy {
            *reached = Reached::Hooked;
            p.on_event(Hook::PreCreate, spec, None)?;
        }
        let mut prepared = self.prepared(spec)?;
        if let Some(pod) = &pod {
            self.join_pod(pod, &mut prepared);
        } else if self.networked(&backend_name) {
            let plan = self.networks.plan(
                &claim.record.id,
                spec,
                crate::records::survives(&claim.record),
                |id| self.holder(id),
            )?;
            prepared.network_namespace = plan.namespace;
            prepared.mounts.extend(plan.mounts);
            prepared.ports = plan.ports;
        }
        self.records.intend(claim, &backend_name, spec)?;
        crash::point("create.intended");
        *reached = Reached::BackendAsked;
        self.backend(&backend_name)?
            .create(&claim.record.id, &prepared)
            .await?;
        Ok(())
    }

    /// Undoes a failed create's effects, latest first: the backend's container, the claim,
    /// then what hooks provisioned (they are told once the claim is gone, so a volume the
    /// container was to mount is free to remove). Failures to undo are logged: the create's
    /// own error is what the user needs to see.
    async fn undo_create(
        &self,
        policy: Option<&dyn Policy>,
        claim: Claim,
        spec: &ContainerSpec,
        options: &CreateOptions,
        reached: Reached,
        error: &Error,
    ) {
        let id = claim.record.id.clone();
        // A pod's prepared app keeps its record for the next start; a `run --pod` app goes.
        if let Some(pod) = &spec.pod
            && let Err(e) = self.unregister_app(pod, &id, options.app.is_some())
        {
            tracing::warn!(%id, error = %e, "cannot take the failed app out of its pod");
        }
        if reached >= Reached::BackendAsked {
            let backend = self.backends.get(&claim.record.backend).ok();
            if let Err(e) = remove_leftover(backend.map(|b| b.as_ref()), &claim.record).await {
                tracing::warn!(%id, error = %e, "cannot remove the half-created container");
            }
        }
        self.release_networks(&id);
        if let Err(e) = self.records.release(claim) {
            tracing::warn!(%id, error = %e, "cannot give the failed create's name back");
        }
        tell_create_failed(policy, &id, spec, reached, error);
    }

    /// Undoes what one attempt took besides the claim and the backend's container (which was
    /// unreachable): its ports and network files, and what its `pre-create` hooks provisioned.
    fn undo_attempt(
        &self,
        policy: Option<&dyn Policy>,
        id: &str,
        spec: &ContainerSpec,
        reached: Reached,
        error: &Error,
    ) {
        self.release_networks(id);
        tell_create_failed(policy, id, spec, reached, error);
    }

    fn release_networks(&self, id: &str) {
        if let Err(e) = self.networks.release(id) {
            tracing::warn!(%id, error = %e, "cannot release the failed create's ports and files");
        }
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
        policy: Option<&dyn Policy>,
        spec: &ContainerSpec,
    ) -> Result<Placement> {
        let mut probed = None;
        if let Some(policy) = policy.filter(|p| p.places()) {
            let candidates = self.backends.infos().await;
            if let Some(chosen) = policy.select_backend(spec, &candidates)? {
                let healthy = candidates.iter().any(|c| c.name == chosen && c.healthy);
                return Ok(Placement {
                    backend: chosen,
                    chosen: Chosen::Policy,
                    healthy,
                });
            }
            probed = Some(candidates);
        }
        if let Some(requested) = &spec.backend {
            if !self.backends.contains(requested) {
                return Err(
                    Error::not_found(berth_core::Object::Backend, requested.as_str())
                        .with_hint("configure it under [backends.<name>] in berth.toml"),
                );
            }
            // Even when its probe fails: the backend's own attempt (with its retries) fails
            // with the most precise error there is.
            return Ok(Placement {
                backend: requested.clone(),
                chosen: Chosen::Requested,
                healthy: true,
            });
        }
        let healthy = match probed {
            Some(candidates) => candidates.into_iter().find(|c| c.healthy),
            None => {
                let mut first = None;
                for name in self.backends.names() {
                    let info = self.backends.probe(name).await;
                    if info.healthy {
                        first = Some(info);
                        break;
                    }
                }
                first
            }
        };
        let first = healthy.ok_or_else(|| {
            Error::conflict(
                "no backend can run the container",
                "every configured backend is unhealthy",
            )
            .with_hint("see `berth backend ls`")
        })?;
        Ok(Placement {
            backend: first.name,
            chosen: Chosen::Default,
            healthy: true,
        })
    }

    /// Whether `error` from an attempt placed as `placement` lets the fallback chain try the
    /// next backend: the chosen backend itself was unreachable (its probe, before any hook, or
    /// its create; not a package repository on the way), it was not the user's own choice, and
    /// the container is no pod's app (those run on their pod's backend).
    fn may_fall_back(
        &self,
        spec: &ContainerSpec,
        placement: &Placement,
        reached: Reached,
        error: &Error,
    ) -> bool {
        let from_the_backend = match reached {
            Reached::Claimed => !placement.backend.is_empty() && !placement.healthy,
            Reached::Hooked => false,
            Reached::BackendAsked => true,
        };
        from_the_backend
            && error.kind() == ErrorKind::Unavailable
            && placement.chosen != Chosen::Requested
            && spec.pod.is_none()
            && !self.config.placement.fallback.is_empty()
    }

    /// The next backend of `[placement] fallback` for `spec` after those `tried`: healthy, able
    /// to run the spec, and the backend policy's pick among such (its deny, or none left, ends
    /// the chain).
    async fn fallback(
        &self,
        policy: Option<&dyn Policy>,
        spec: &ContainerSpec,
        tried: &[String],
    ) -> Option<String> {
        let needed = capability::needed_by_spec(spec);
        let mut candidates = Vec::new();
        for name in &self.config.placement.fallback {
            if tried.contains(name) || self.backends.require(name, needed).is_err() {
                continue;
            }
            let info = self.backends.probe(name).await;
            if info.healthy {
                candidates.push(info);
            }
        }
        if let Some(policy) = policy.filter(|p| p.places())
            && !candidates.is_empty()
        {
            match policy.select_backend(spec, &candidates) {
                Ok(Some(chosen)) if candidates.iter().any(|c| c.name == chosen) => {
                    return Some(chosen);
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        candidates.into_iter().next().map(|c| c.name)
    }

    /// A user's start: the container's restart policy applies afresh from here.
    pub async fn start(self: &Arc<Self>, record: &ContainerRecord) -> Result<()> {
        self.start_as(record, true).await
    }

    /// Starts the container (`by_user`: not by its restart policy), and has its restart
    /// policy watched from then on.
    pub(crate) async fn start_as(
        self: &Arc<Self>,
        record: &ContainerRecord,
        by_user: bool,
    ) -> Result<()> {
        self.usable(record)?;
        if by_user {
            self.started_by_user(record)?;
        }
        let policy = self.policies.hooks()?;
        self.around(
            policy.as_deref(),
            record,
            Hook::PreStart,
            Hook::PostStart,
            async {
                // Held so gc, which detaches the networks of containers that are not running,
                // never does so under a start.
                let _lock = self.records.lock(&record.id)?;
                let networked = self.networked(&record.backend);
                if networked {
                    self.networks.attach(&record.id).await?;
                }
                let started = self.backend(&record.backend)?.start(&record.id).await;
                if started.is_err() && networked {
                    self.detach_quietly(record).await;
                }
                started?;
                self.watch_restarts(record, false)
            },
        )
        .await
    }

    /// Detaches a container's networks, logging a failure (its leftovers are gc's); whether
    /// it worked.
    async fn detach_quietly(&self, record: &ContainerRecord) -> bool {
        let detached = self.networks.detach(&record.id).await;
        if let Err(e) = &detached {
            tracing::warn!(id = %record.id, error = %e, "cannot detach the container's networks; `berth gc` retries");
        }
        detached.is_ok()
    }

    /// How a container id is named in a message about what it holds.
    pub(crate) fn holder(&self, id: &str) -> String {
        match self.records.resolve(id) {
            Ok(record) => format!("{:?} ({})", record.name, crate::short(id)),
            Err(_) => id.to_string(),
        }
    }

    pub async fn stop(
        self: &Arc<Self>,
        record: &ContainerRecord,
        options: &StopOptions,
    ) -> Result<()> {
        self.usable(record)?;
        let policy = self.policies.hooks()?;
        self.around(
            policy.as_deref(),
            record,
            Hook::PreStop,
            Hook::PostStop,
            async {
                // A stop killed between the two steps leaves a stopped container attached:
                // the next start detaches first, and gc detaches it (see `gc`).
                let _lock = self.records.lock(&record.id)?;
                self.stop_requested(record)?;
                self.backend(&record.backend)?
                    .stop(&record.id, options)
                    .await?;
                crash::point("stop.backend-stopped");
                if self.networked(&record.backend) {
                    self.detach_quietly(record).await;
                }
                Ok(())
            },
        )
        .await
    }

    /// Removes the container and its record. The record is marked `removing` first, so a
    /// removal that dies half-way is finished by the next `rm` or by gc; a backend that no
    /// longer has the container has nothing left to remove.
    pub async fn remove(
        self: &Arc<Self>,
        record: &ContainerRecord,
        options: RemoveOptions,
    ) -> Result<()> {
        if record.phase == Phase::Unreadable {
            return self.remove_unreadable(record, options).await;
        }
        let policy = self.policies.hooks()?;
        if options.keep_snapshot {
            self.backends.require(
                &record.backend,
                berth_core::Capabilities::of(&[berth_core::Capability::Snapshots]),
            )?;
        }
        self.around(
            policy.as_deref(),
            record,
            Hook::PreRemove,
            Hook::PostRemove,
            async {
                let _lock = self.records.lock(&record.id)?;
                let record = self.records.reread(&record.id)?;
                self.records.removing(&record)?;
                crash::point("remove.marked");
                match self
                    .backend(&record.backend)?
                    .remove(&record.id, options)
                    .await
                {
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    other => other?,
                }
                crash::point("remove.backend-removed");
                // Ports and files go only once DEL worked; otherwise gc retries it.
                if self.networked(&record.backend) && self.detach_quietly(&record).await {
                    self.networks.release(&record.id)?;
                }
                if let Some(pod) = &record.spec.pod {
                    self.unregister_app(pod, &record.id, false)?;
                }
                self.records.remove(&record)
            },
        )
        .await
    }

    /// `rm -f` of a record that does not parse: whatever backend object carries its id goes
    /// (the record cannot say which backend), then the record. No hooks: there is no spec.
    async fn remove_unreadable(
        &self,
        record: &ContainerRecord,
        options: RemoveOptions,
    ) -> Result<()> {
        if !options.force {
            return Err(self
                .unreadable(record)
                .with_hint(format!("remove it with `berth rm -f {}`", record.id)));
        }
        let _lock = self.records.lock(&record.id)?;
        for name in self.backends.names() {
            let backend = self.backend(name)?;
            match backend.remove(&record.id, RemoveOptions::forced()).await {
                Ok(()) => {
                    tracing::info!(id = %record.id, backend = name, "removed the container of an unreadable record")
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(id = %record.id, backend = name, error = %e, "cannot ask about an unreadable record's container")
                }
            }
        }
        self.records.remove(record)
    }

    /// What a backend leaves of a record whose create or removal died: its container.
    pub(crate) async fn remove_leftover(&self, record: &ContainerRecord) -> Result<()> {
        let backend = self.backends.get(&record.backend).ok();
        remove_leftover(backend.map(|b| b.as_ref()), record).await
    }

    /// Refuses to act on a record that does not parse, saying how to get rid of it.
    pub(crate) fn usable(&self, record: &ContainerRecord) -> Result<()> {
        if record.phase == Phase::Unreadable {
            return Err(self.unreadable(record));
        }
        Ok(())
    }

    fn unreadable(&self, record: &ContainerRecord) -> Error {
        Error::Corrupt {
            what: "container record".into(),
            path: self.records.path(&record.id),
            message: record.problem.clone().unwrap_or_default(),
            hint: format!("`berth rm -f {}` removes it and its container", record.id),
        }
    }

    /// `pre`, then `step` unless a pre-hook refused it, then `post` (observing) if it worked.
    async fn around(
        &self,
        policy: Option<&dyn Policy>,
        record: &ContainerRecord,
        pre: Hook,
        post: Hook,
        step: impl Future<Output = Result<()>>,
    ) -> Result<()> {
        let mut spec = record.spec.clone();
        if let Some(p) = policy {
            p.on_event(pre, &mut spec, Some(&record.id))?;
        }
        step.await?;
        if let Some(p) = policy {
            observe(p.on_event(post, &mut spec, Some(&record.id)));
        }
        Ok(())
    }
}

/// Post-hooks observe: a failure is logged (and in the decision log) but undoes nothing.
pub(crate) fn observe(result: Result<()>) {
    if let Err(e) = result {
        tracing::warn!(error = %e, "post-hook failed; the operation stands");
    }
}

fn default_name() -> String {
    format!("berth-{}", &berth_core::new_id()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_follow_the_host_rule() {
        assert!(berth_core::validate::container_name(&default_name()).is_ok());
    }
}
