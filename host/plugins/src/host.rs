//! `PluginHost`: the configured plugins, consulted in config order, folded into one decision per
//! operation.
//!
//! Rules: any deny from a name or pre-hook plugin stops the operation with that plugin's reason;
//! the first backend plugin with an answer decides; pre-create patches apply in order and must
//! not contradict each other; post-hooks and `create-failed` only observe. A failing plugin
//! (trap, timeout, out of memory, nonsense answer) is handled by its `on-error`; a `monitor`
//! plugin is recorded, never obeyed. Every answer lands in the decision log.

use std::path::PathBuf;
use std::time::Instant;

use berth_core::config::{Grant, OnError, PluginConfig, PluginMode, PluginWorld};
use berth_core::pod::{PodApp, PodSpec};
use berth_core::{BackendInfo, Config, ContainerSpec, Error, Result};
use chrono::Utc;
use serde::Serialize;

use crate::answers;
use crate::convert;
use crate::events::{self, Decision, EventLog, Verdict};
use crate::hook::{Function, Hook};
use crate::interfaces::HostServices;
use crate::interfaces::types::wit;
use crate::patch::{Patch, PatchSet};
use crate::plugin::Plugin;
use crate::worlds::Abi;

/// Where a plugin's compiled code came from at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheStatus {
    /// Loaded from `<state-dir>/cache/plugins/`.
    Hit,
    /// Compiled now (and cached for next time).
    Compiled,
}

/// What `berth plugin ls` shows about one loaded plugin.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct PluginSummary {
    pub name: String,
    pub path: PathBuf,
    pub sha256: String,
    pub worlds: Vec<PluginWorld>,
    /// The `berth:plugin` version the component was built against.
    pub abi: Abi,
    pub grants: Vec<Grant>,
    pub mode: PluginMode,
    pub on_error: OnError,
    pub timeout_ms: u64,
    pub memory_mb: u64,
    pub cache: CacheStatus,
}

/// The loaded plugins of one configuration. `Send + Sync`: calls may come from any thread.
pub struct PluginHost {
    plugins: Vec<Plugin>,
    log: EventLog,
}

const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<PluginHost>();
};

/// What one plugin said, before the pipeline acts on it: `Ok(Err(reason))` is a deny.
type Answer<T> = Result<std::result::Result<T, String>>;

/// How an answer is recorded: verdict, reason, patch.
type Described = (Verdict, Option<String>, Option<Patch>);

/// An answer as recorded; `Err` holds the failure message.
type Outcome = std::result::Result<std::result::Result<Described, String>, String>;

impl PluginHost {
    /// Loads every configured plugin (compiled code cached under `<state-dir>/cache/plugins/`,
    /// decisions logged to `<run-dir>/events.jsonl`). Any plugin that cannot load fails the
    /// whole load: silently running without a configured policy would be worse. Without plugins
    /// nothing is compiled and no engine is created. Each plugin keeps the part of `services`
    /// its grants allow; one that imports an interface `services` lacks does not load.
    pub fn load(config: &Config, services: HostServices) -> Result<PluginHost> {
        PluginHost::load_where(config, services, |_| true)
    }

    /// Loads only the plugins that play one of `worlds`: what a command that consults no
    /// other world needs (`berth rm` pays for its hooks, not for the name policy's regex
    /// engine).
    pub fn load_playing(
        config: &Config,
        worlds: &[PluginWorld],
        services: HostServices,
    ) -> Result<PluginHost> {
        PluginHost::load_where(config, services, |p| {
            p.worlds.iter().any(|w| worlds.contains(w))
        })
    }

    fn load_where(
        config: &Config,
        services: HostServices,
        wanted: impl Fn(&PluginConfig) -> bool,
    ) -> Result<PluginHost> {
        let cache_dir = crate::engine::cache_dir(&config.host);
        let plugins = config
            .plugins
            .iter()
            .filter(|p| wanted(p))
            .map(|p| Plugin::load(p, &cache_dir, &config.source, &services))
            .collect::<Result<Vec<_>>>()?;
        Ok(PluginHost {
            plugins,
            log: EventLog::new(events::log_path(&config.host)),
        })
    }

    pub fn summaries(&self) -> Vec<PluginSummary> {
        self.plugins
            .iter()
            .map(|p| PluginSummary {
                name: p.config.name.clone(),
                path: p.config.path.clone(),
                sha256: p.sha256.clone(),
                worlds: p.config.worlds.clone(),
                abi: p.abi,
                grants: p.config.grants.clone(),
                mode: p.config.mode,
                on_error: p.config.on_error,
                timeout_ms: p.config.timeout_ms,
                memory_mb: p.config.memory_mb,
                cache: if p.cache_hit {
                    CacheStatus::Hit
                } else {
                    CacheStatus::Compiled
                },
            })
            .collect()
    }

    /// Whether no configured plugin was loaded (none configured, or none playing the world a
    /// [`PluginHost::load_playing`] asked for).
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// Whether any plugin plays `world` (e.g. to skip building inputs nobody reads).
    pub fn has(&self, world: PluginWorld) -> bool {
        self.plugins
            .iter()
            .any(|p| p.config.worlds.contains(&world))
    }

    /// Asks every name policy whether `name` is acceptable for an object of `kind`
    /// (`"container"`). The first enforced deny wins.
    pub fn validate_name(&self, kind: &str, name: &str) -> Result<()> {
        let input = events::digest(&(kind, name));
        for plugin in self.plugins.iter().filter(|p| p.naming().is_some()) {
            self.consult(
                plugin,
                "validate-name",
                name,
                &input,
                describe_allow,
                || ask_validate(plugin, kind, name),
            )?;
        }
        Ok(())
    }

    /// Asks name policies, in order, for a name for an unnamed object; the first enforced
    /// `some` wins. `None`: no plugin had an opinion (use the host's default). A generated name
    /// that breaks the host's name rule is that plugin's failure; the caller should still run
    /// `validate_name` on the result.
    pub fn generate_name(&self, kind: &str, spec: &ContainerSpec) -> Result<Option<String>> {
        let input = events::digest(&(kind, spec));
        let wit_spec = convert::spec(spec);
        for plugin in self.plugins.iter().filter(|p| p.naming().is_some()) {
            let answer = self.consult(
                plugin,
                "generate-name",
                &spec.name,
                &input,
                describe_name,
                || ask_generate(plugin, kind, &wit_spec),
            )?;
            if let Some(Some(name)) = answer {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }

    /// Whether any plugin plays the backend-policy role (and so needs every backend probed).
    pub fn has_backend_policy(&self) -> bool {
        self.plugins.iter().any(|p| p.placement().is_some())
    }

    /// Asks backend policies, in order, which of `candidates` runs `spec`; the first enforced
    /// answer decides. `None`: no backend policy decided (use the host's default). A plugin
    /// naming a backend that is not a candidate has failed (`Error::PluginFailed`; its
    /// `on-error` applies).
    pub fn select_backend(
        &self,
        spec: &ContainerSpec,
        candidates: &[BackendInfo],
    ) -> Result<Option<String>> {
        let input = events::digest(&(spec, candidates));
        let wit_spec = convert::spec(spec);
        let wit_candidates: Vec<_> = candidates.iter().map(convert::backend_info).collect();
        for plugin in self.plugins.iter().filter(|p| p.placement().is_some()) {
            let describe = |backend: &String| describe_select(backend);
            let answer = self.consult(
                plugin,
                "select-backend",
                &spec.name,
                &input,
                describe,
                || ask_placement(plugin, &wit_spec, &wit_candidates, candidates),
            )?;
            if let Some(backend) = answer {
                return Ok(Some(backend));
            }
        }
        Ok(None)
    }

    /// Tells hook plugins about `hook`. At `pre-*` hooks an enforced deny refuses the step; at
    /// `pre-create` patches are applied to `spec` in config order. `post-*` hooks only observe:
    /// this returns `Ok` whatever they say (failures are logged and recorded). For
    /// [`Hook::CreateFailed`] use [`PluginHost::create_failed`], which carries the reason.
    pub fn on_event(&self, hook: Hook, spec: &mut ContainerSpec, id: Option<&str>) -> Result<()> {
        self.notify(hook, spec, id, None)
    }

    /// Tells hook plugins that creating the container of `spec` failed after `pre-create` hooks
    /// ran, and why (`reason`, as the user sees it), so they release what they provisioned.
    /// `spec` is the spec as the pre-create hooks left it, so a plugin finds what it added;
    /// `id` is the container's id if one was assigned. Observe-only: failures are logged and
    /// recorded in the decision log, never returned. Plugins built against 0.1.0, which has no
    /// such event, are not told.
    pub fn create_failed(&self, spec: &ContainerSpec, id: Option<&str>, reason: &str) {
        let mut spec = spec.clone();
        if let Err(e) = self.notify(Hook::CreateFailed, &mut spec, id, Some(reason)) {
            // Observe-only hooks answer nothing that can fail the step; this is a host bug.
            tracing::warn!(error = %escaped(&e), "create-failed hooks failed");
        }
    }

    fn notify(
        &self,
        hook: Hook,
        spec: &mut ContainerSpec,
        id: Option<&str>,
        reason: Option<&str>,
    ) -> Result<()> {
        let container = if spec.name.is_empty() {
            id.unwrap_or_default().to_string()
        } else {
            spec.name.clone()
        };
        let event = convert::event(hook, id, reason);
        let mut patches = PatchSet::default();
        let told = self
            .plugins
            .iter()
            .filter(|p| p.hooks().is_some_and(|h| h.knows(event.hook)));
        for plugin in told {
            let input = hook_input(hook, spec, id, reason);
            let wit_spec = convert::spec(spec);
            let describe = |patch: &Option<Patch>| describe_patch(hook, patch);
            let answer = self.consult(plugin, hook.as_str(), &container, &input, describe, || {
                ask_hooks(plugin, hook, &event, spec, &wit_spec)
            });
            match answer {
                Ok(Some(Some(patch))) if hook == Hook::PreCreate => {
                    patches.apply(plugin.name(), &patch, spec)?
                }
                Ok(_) => {}
                Err(e) if hook.is_pre() => return Err(e),
                Err(e) => {
                    tracing::warn!(plugin = plugin.name(), %hook, error = %escaped(&e), "observing hook failed; nothing undone")
                }
            }
        }
        Ok(())
    }

    /// Tells pod-hook plugins about `hook` of the pod `pod` (with its `apps`; `id` once it has
    /// one). At `pre-*` hooks an enforced deny refuses the step; `post-*` hooks and
    /// `create-failed` (with its `reason`) only observe: their failures are logged and
    /// recorded, never returned. Decisions are recorded as `pod-<hook>`.
    pub fn on_pod_event(
        &self,
        hook: Hook,
        pod: &PodSpec,
        apps: &[PodApp],
        id: Option<&str>,
        reason: Option<&str>,
    ) -> Result<()> {
        let name = if pod.name.is_empty() {
            id.unwrap_or_default()
        } else {
            &pod.name
        };
        let function = format!("pod-{hook}");
        let event = convert::event(hook, id, reason);
        let wit_pod = convert::pod(pod, apps);
        let input = events::digest(&(hook, pod, apps, id, reason));
        for plugin in self.plugins.iter().filter(|p| p.pod_hooks().is_some()) {
            let answer = self.consult(plugin, &function, name, &input, describe_allow, || {
                ask_pod_hooks(plugin, &function, &event, &wit_pod)
            });
            match answer {
                Ok(_) => {}
                Err(e) if hook.is_pre() => return Err(e),
                Err(e) => {
                    tracing::warn!(plugin = plugin.name(), hook = %function, error = %escaped(&e), "observing pod hook failed; nothing undone")
                }
            }
        }
        Ok(())
    }

    /// One call to one plugin, for `berth plugin call NAME FUNCTION`: the decision as it would
    /// be recorded (not written to the log, and `monitor`/`on-error` not applied). `spec.name`
    /// is the name `validate-name` checks; `candidates` feed `select-backend`.
    pub fn call(
        &self,
        plugin: &str,
        function: Function,
        spec: &ContainerSpec,
        candidates: &[BackendInfo],
        id: Option<&str>,
    ) -> Result<Decision> {
        let plugin = self.callable(plugin, function)?;
        let started = Instant::now();
        let (input, outcome): (String, Answer<Described>) = match function {
            Function::ValidateName => (
                events::digest(&("container", &spec.name)),
                ask_validate(plugin, "container", &spec.name)
                    .map(|a| a.map(|()| describe_allow(&()))),
            ),
            Function::GenerateName => (
                events::digest(&("container", spec)),
                ask_generate(plugin, "container", &convert::spec(spec))
                    .map(|a| a.map(|name| describe_name(&name))),
            ),
            Function::SelectBackend => {
                let wit: Vec<_> = candidates.iter().map(convert::backend_info).collect();
                let answer = ask_placement(plugin, &convert::spec(spec), &wit, candidates);
                (
                    events::digest(&(spec, candidates)),
                    answer.map(|a| a.map(|b| describe_select(&b))),
                )
            }
            Function::PodEvent(_) => {
                return Err(Error::invalid(
                    format!("call of {function} on plugin {:?}", plugin.name()),
                    "a pod hook is told a pod, not a container",
                )
                .with_hint("call it with a pod spec (`PluginHost::call_pod`)"));
            }
            Function::Event(hook) => {
                let reason = (hook == Hook::CreateFailed).then_some(TRIAL_REASON);
                let event = convert::event(hook, id, reason);
                let hooks = plugin.hooks().expect("world checked");
                if !hooks.knows(event.hook) {
                    return Err(Error::invalid(
                        format!("call of {function} on plugin {:?}", plugin.name()),
                        format!(
                            "the plugin is built against berth:plugin@{}, which has no {hook} \
                             event (it is never told one)",
                            hooks.abi()
                        ),
                    ));
                }
                let answer = ask_hooks(plugin, hook, &event, spec, &convert::spec(spec));
                (
                    hook_input(hook, spec, id, reason),
                    answer.map(|a| a.map(|p| describe_patch(hook, &p))),
                )
            }
        };
        let outcome = outcome.map_err(|e| e.to_string());
        Ok(self.decision(
            plugin,
            function.as_str(),
            &spec.name,
            input,
            started,
            outcome,
        ))
    }

    /// The plugin named `name`, if it is configured to play `function`'s world.
    fn callable(&self, name: &str, function: Function) -> Result<&Plugin> {
        let plugin = self
            .plugins
            .iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                let names: Vec<_> = self.plugins.iter().map(|p| p.name()).collect();
                Error::not_found(berth_core::Object::Plugin, name)
                    .with_hint(format!("configured plugins: {}", names.join(", ")))
            })?;
        if !plugin.config.worlds.contains(&function.world()) {
            return Err(Error::invalid(
                format!("call of {function} on plugin {:?}", plugin.name()),
                format!(
                    "the plugin is not configured as {}",
                    function.world().as_str()
                ),
            ));
        }
        Ok(plugin)
    }

    /// One pod-hook call to one plugin, for `berth plugin call NAME pod-HOOK POD-SPEC`: the
    /// decision as it would be recorded (not logged; `monitor`/`on-error` not applied).
    pub fn call_pod(&self, plugin: &str, hook: Hook, pod: &PodSpec) -> Result<Decision> {
        let function = Function::PodEvent(hook);
        let plugin = self.callable(plugin, function)?;
        let started = Instant::now();
        let reason = (hook == Hook::CreateFailed).then_some(TRIAL_REASON);
        let event = convert::event(hook, None, reason);
        let answer = ask_pod_hooks(plugin, function.as_str(), &event, &convert::pod(pod, &[]));
        let outcome = answer
            .map(|a| a.map(|()| describe_allow(&())))
            .map_err(|e| e.to_string());
        let input = events::digest(&(hook, pod, reason));
        Ok(self.decision(
            plugin,
            function.as_str(),
            &pod.name,
            input,
            started,
            outcome,
        ))
    }

    /// Calls one plugin, records its answer, and applies `mode` and `on-error`:
    /// `Ok(Some(answer))` to act on, `Ok(None)` to carry on without this plugin, `Err` to stop.
    fn consult<T>(
        &self,
        plugin: &Plugin,
        function: &str,
        container: &str,
        input: &str,
        describe: impl FnOnce(&T) -> Described,
        call: impl FnOnce() -> Answer<T>,
    ) -> Result<Option<T>> {
        let started = Instant::now();
        let budget_us = crate::budget::current().map(|budget| {
            let timeout = std::time::Duration::from_millis(plugin.config.timeout_ms);
            budget.left().min(timeout).as_micros() as u64
        });
        let answer = call();
        let outcome = match &answer {
            Ok(Ok(value)) => Ok(Ok(describe(value))),
            Ok(Err(reason)) => Ok(Err(reason.clone())),
            Err(e) => Err(e.to_string()),
        };
        let mut decision = self.decision(
            plugin,
            function,
            container,
            input.to_string(),
            started,
            outcome,
        );
        decision.budget_us = budget_us;
        self.log.append(&decision);
        if plugin.config.mode == PluginMode::Monitor {
            return Ok(None);
        }
        match answer {
            Ok(Ok(value)) => Ok(Some(value)),
            Ok(Err(reason)) => Err(Error::Denied {
                plugin: plugin.name().to_string(),
                hook: function.to_string(),
                reason,
            }),
            Err(_) if plugin.config.on_error == OnError::Allow => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn decision(
        &self,
        plugin: &Plugin,
        function: &str,
        container: &str,
        input: String,
        started: Instant,
        outcome: Outcome,
    ) -> Decision {
        let latency_us = started.elapsed().as_micros() as u64;
        let (verdict, reason, patch) = match outcome {
            Ok(Ok(described)) => described,
            Ok(Err(reason)) => (Verdict::Deny, Some(reason), None),
            Err(mut reason) => {
                if plugin.config.on_error == OnError::Allow {
                    reason.push_str(" (on-error = allow: plugin skipped)");
                }
                (Verdict::Error, Some(reason), None)
            }
        };
        tracing::debug!(
            plugin = plugin.name(),
            function,
            container,
            verdict = verdict.as_str(),
            latency_us,
            "plugin decision"
        );
        Decision {
            time: Utc::now(),
            plugin: plugin.name().to_string(),
            function: function.to_string(),
            container: berth_core::text::truncated(container, answers::MAX_CONTAINER).into_owned(),
            verdict,
            reason,
            patch,
            latency_us,
            budget_us: None,
            mode: plugin.config.mode,
            input,
        }
    }
}

/// Asks a name policy about `name`; the deny reason comes back bounded.
fn ask_validate(plugin: &Plugin, kind: &str, name: &str) -> Answer<()> {
    let naming = plugin.naming().expect("only asked of name policies");
    let answer = plugin.run("validate-name", |store, instance| {
        naming.validate_name(store, instance, kind, name)
    })?;
    Ok(answers::verdict(answer))
}

/// Asks a name policy for a name; one that breaks the host's name rule is the plugin's failure.
fn ask_generate(plugin: &Plugin, kind: &str, spec: &wit::ContainerSpec) -> Answer<Option<String>> {
    let naming = plugin.naming().expect("only asked of name policies");
    let answer = plugin.run("generate-name", |store, instance| {
        naming.generate_name(store, instance, kind, spec)
    })?;
    match answers::verdict(answer) {
        Ok(name) => Ok(Ok(answers::generated_name(plugin.name(), name)?)),
        Err(reason) => Ok(Err(reason)),
    }
}

/// Asks a backend policy to choose; naming a backend that is not a candidate is the plugin's
/// failure.
fn ask_placement(
    plugin: &Plugin,
    spec: &wit::ContainerSpec,
    wit_candidates: &[wit::BackendInfo],
    candidates: &[BackendInfo],
) -> Answer<String> {
    let placement = plugin.placement().expect("only asked of backend policies");
    let answer = plugin.run("select-backend", |store, instance| {
        placement.select_backend(store, instance, spec, wit_candidates)
    })?;
    match answers::verdict(answer) {
        Ok(backend) => Ok(Ok(answers::backend(plugin.name(), backend, candidates)?)),
        Err(reason) => Ok(Err(reason)),
    }
}

/// Tells a hook plugin about `hook`; its patch comes back bounded and, at `pre-create`,
/// checked against `spec` (see [`answers::patch`]).
fn ask_hooks(
    plugin: &Plugin,
    hook: Hook,
    event: &wit::Event,
    spec: &ContainerSpec,
    wit_spec: &wit::ContainerSpec,
) -> Answer<Option<Patch>> {
    let hooks = plugin.hooks().expect("only asked of hook plugins");
    let answer = plugin.run(hook.as_str(), |store, instance| {
        hooks.on_event(store, instance, event, wit_spec)
    })?;
    match answers::verdict(answer) {
        Ok(patch) => Ok(Ok(answers::patch(plugin.name(), hook, patch, spec)?)),
        Err(reason) => Ok(Err(reason)),
    }
}

/// Tells a pod-hook plugin about a pod's step; its reason comes back bounded.
fn ask_pod_hooks(
    plugin: &Plugin,
    function: &str,
    event: &wit::Event,
    pod: &wit::PodSpec,
) -> Answer<()> {
    let hooks = plugin.pod_hooks().expect("only asked of pod-hook plugins");
    let answer = plugin.run(function, |store, instance| {
        hooks.on_pod_event(store, instance, event, pod)
    })?;
    Ok(answers::verdict(answer))
}

/// An error quoting a plugin's answer, fit for the host's log: the log's formatter escapes
/// some controls but lets a carriage return or a newline through, which could overwrite or
/// fake a line.
fn escaped(e: &Error) -> String {
    berth_core::text::escaped(&e.to_string()).into_owned()
}

/// The digest of a hook call's input; the reason only counts where there is one, so the other
/// hooks' digests stay what they were before `create-failed` existed.
fn hook_input(hook: Hook, spec: &ContainerSpec, id: Option<&str>, reason: Option<&str>) -> String {
    match reason {
        Some(reason) => events::digest(&(hook, spec, id, reason)),
        None => events::digest(&(hook, spec, id)),
    }
}

/// The reason a trial `create-failed` call carries, so the plugin can tell it from a real one.
const TRIAL_REASON: &str = "a trial call from `berth plugin call`; nothing failed";

fn describe_allow(_: &()) -> Described {
    (Verdict::Allow, None, None)
}

fn describe_name(name: &Option<String>) -> Described {
    match name {
        Some(name) => (Verdict::Select, Some(name.clone()), None),
        None => (Verdict::Allow, None, None),
    }
}

fn describe_select(backend: &str) -> Described {
    (Verdict::Select, Some(backend.to_string()), None)
}

fn describe_patch(hook: Hook, patch: &Option<Patch>) -> Described {
    match patch {
        None => (Verdict::Allow, None, None),
        Some(patch) => {
            let ignored = (hook != Hook::PreCreate)
                .then(|| format!("ignored: only pre-create may patch, not {hook}"));
            (Verdict::Patch, ignored, Some(patch.clone()))
        }
    }
}
