//! One loaded plugin: its compiled component, the checks that decide whether it may load
//! (sha256 pin, grants, exported worlds), and the budgeted call path.
//!
//! A plugin is instantiated from a pre-linked `InstancePre` on its first call, and that
//! instance serves the process's later calls (instantiating afresh each time cost more than
//! most decisions). Every call runs under an epoch deadline of `timeout-ms` and a `memory-mb`
//! cap; a call that traps, times out or runs out of memory discards the instance, so the next
//! call starts fresh and a misbehaving plugin costs one failed call and nothing more.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use berth_core::config::{GRANTABLE_INTERFACES, PluginConfig, PluginWorld};
use berth_core::{Error, PluginFailure, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Instance, InstancePre, Linker};
use wasmtime::{Engine, Store, Trap};

use crate::bindings::{BackendPolicyIndices, LifecycleHooksIndices, NamePolicyIndices};
use crate::engine::{self, Runtime};
use crate::interfaces::{self, HostServices};
use crate::state::HostState;

/// The package every berth host interface lives in.
pub(crate) const PACKAGE: &str = "berth:plugin/";

/// Interfaces every plugin may import.
const ALWAYS_GRANTED: &[&str] = &["types", "log", "config"];

/// The interface a world's exports live in, as imported/exported component names.
pub(crate) fn export_name(world: PluginWorld) -> &'static str {
    match world {
        PluginWorld::NamePolicy => "berth:plugin/naming@0.1.0",
        PluginWorld::BackendPolicy => "berth:plugin/placement@0.1.0",
        PluginWorld::LifecycleHooks => "berth:plugin/hooks@0.1.0",
    }
}

pub(crate) struct Plugin {
    pub config: Arc<PluginConfig>,
    pub sha256: String,
    /// Whether the compiled code came from the on-disk cache.
    pub cache_hit: bool,
    runtime: &'static Runtime,
    pre: InstancePre<HostState>,
    naming: Option<NamePolicyIndices>,
    placement: Option<BackendPolicyIndices>,
    hooks: Option<LifecycleHooksIndices>,
    /// The instance serving calls, until one fails.
    live: Mutex<Option<Live>>,
}

struct Live {
    store: Store<HostState>,
    /// `None` until the first call instantiates it (under that call's budget).
    instance: Option<Instance>,
}

fn load_error(plugin: &str, message: impl Into<String>) -> Error {
    Error::PluginFailed {
        plugin: plugin.to_string(),
        hook: "load".into(),
        failure: PluginFailure::Load,
        message: message.into(),
    }
}

/// What a component file looked like when it was hashed: git's test for "unchanged" (a rewrite
/// moves ctime, which no user can set back).
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct FileStamp {
    path: std::path::PathBuf,
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Hashed {
    stamp: FileStamp,
    sha256: String,
}

impl FileStamp {
    fn of(path: &Path) -> std::io::Result<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path)?;
        let ns = |secs: i64, nanos: i64| secs as i128 * 1_000_000_000 + nanos as i128;
        Ok(FileStamp {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        })
    }

    /// `<cache>/hashes/<sha256 of the path>.json`.
    fn record(&self, cache_dir: &Path) -> std::path::PathBuf {
        let key = sha256_hex(self.path.as_os_str().as_encoded_bytes());
        cache_dir.join("hashes").join(format!("{key}.json"))
    }

    /// The sha256 recorded for exactly this file state, if any.
    fn remembered(&self, cache_dir: &Path) -> Option<String> {
        let text = std::fs::read(self.record(cache_dir)).ok()?;
        let hashed: Hashed = serde_json::from_slice(&text).ok()?;
        (hashed.stamp == *self).then_some(hashed.sha256)
    }

    /// Best effort: a record that cannot be written only costs the next load a hash.
    fn remember(self, cache_dir: &Path, sha256: &str) {
        let path = self.record(cache_dir);
        let hashed = Hashed {
            stamp: self,
            sha256: sha256.to_string(),
        };
        if let Err(e) = berth_core::store::write_json(&path, &hashed) {
            tracing::debug!(path = %path.display(), error = %e, "cannot record a plugin's hash");
        }
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Reasons `config` would refuse a component with these imports and digest, in the words the
/// user needs to fix it. `source` names the config file.
pub(crate) fn problems(
    config: &PluginConfig,
    sha256: &str,
    imports: &[String],
    source: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    let name = &config.name;
    if let Some(pin) = &config.sha256
        && !pin.eq_ignore_ascii_case(sha256)
    {
        problems.push(format!(
            "sha256 of {} does not match the pin: expected {pin}, actual {sha256} (if the new \
             component is trusted, update sha256 of [[plugins]] name = {name:?} in {source})",
            config.path.display()
        ));
    }
    for import in imports {
        let Some(rest) = import.strip_prefix(PACKAGE) else {
            continue;
        };
        let interface = rest.split('@').next().unwrap_or(rest);
        if ALWAYS_GRANTED.contains(&interface) || config.grants.iter().any(|g| g == interface) {
            continue;
        }
        if GRANTABLE_INTERFACES.contains(&interface) {
            problems.push(format!(
                "plugin {name:?} imports {import} but is not granted it: add {interface:?} to \
                 grants of [[plugins]] name = {name:?} in {source}"
            ));
        } else {
            problems.push(format!(
                "plugin {name:?} imports {import}, which this berth does not provide (built \
                 against a newer berth:plugin WIT?)"
            ));
        }
    }
    problems
}

/// Component import names, e.g. `berth:plugin/log@0.1.0`, `wasi:cli/environment@0.2.0`.
pub(crate) fn imports(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .collect()
}

pub(crate) fn exports(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect()
}

/// WASI (with an empty context) and every berth interface. One linker serves every plugin:
/// what a plugin may import is decided from its imports and grants ([`problems`]) before it is
/// linked, so linking everything grants nothing.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    interfaces::add_types_to_linker(&mut linker)?;
    interfaces::log::add_to_linker(&mut linker)?;
    interfaces::config::add_to_linker(&mut linker)?;
    for grant in GRANTABLE_INTERFACES {
        match *grant {
            "containers" => interfaces::containers::add_to_linker(&mut linker)?,
            "quotas" => interfaces::quotas::add_to_linker(&mut linker)?,
            "packages" => interfaces::packages::add_to_linker(&mut linker)?,
            "snapshots" => interfaces::snapshots::add_to_linker(&mut linker)?,
            other => {
                return Err(wasmtime::format_err!(
                    "this berth cannot provide granted interface {other:?}"
                ));
            }
        }
    }
    Ok(linker)
}

/// The typed entry points of the worlds this component implements (by exports and types).
pub(crate) struct Worlds {
    pub naming: Option<NamePolicyIndices>,
    pub placement: Option<BackendPolicyIndices>,
    pub hooks: Option<LifecycleHooksIndices>,
}

impl Worlds {
    pub fn new(pre: &InstancePre<HostState>) -> Worlds {
        Worlds {
            naming: NamePolicyIndices::new(pre).ok(),
            placement: BackendPolicyIndices::new(pre).ok(),
            hooks: LifecycleHooksIndices::new(pre).ok(),
        }
    }

    pub fn implemented(&self) -> Vec<PluginWorld> {
        let mut worlds = Vec::new();
        if self.naming.is_some() {
            worlds.push(PluginWorld::NamePolicy);
        }
        if self.placement.is_some() {
            worlds.push(PluginWorld::BackendPolicy);
        }
        if self.hooks.is_some() {
            worlds.push(PluginWorld::LifecycleHooks);
        }
        worlds
    }
}

impl Plugin {
    /// Reads, verifies, compiles (or loads from `cache_dir`) and links one plugin.
    pub fn load(config: &PluginConfig, cache_dir: &Path, source: &str) -> Result<Plugin> {
        let name = config.name.as_str();
        let started = Instant::now();
        let unreadable = |e: std::io::Error| {
            load_error(
                name,
                format!(
                    "cannot read {}: {e} (check path of [[plugins]] name = {name:?} in {source})",
                    config.path.display()
                ),
            )
        };
        let stamp = FileStamp::of(&config.path).map_err(unreadable)?;
        // An unpinned plugin whose file has not changed since it was last hashed is not read
        // at all when its compiled code is cached; a pinned one is always hashed.
        let remembered = config
            .sha256
            .is_none()
            .then(|| stamp.remembered(cache_dir))
            .flatten();
        let (sha256, bytes) = match remembered {
            Some(sha256) => (sha256, None),
            None => {
                let bytes = std::fs::read(&config.path).map_err(unreadable)?;
                let sha256 = sha256_hex(&bytes);
                stamp.remember(cache_dir, &sha256);
                (sha256, Some(bytes))
            }
        };
        // Refuse a wrong pin before compiling anything from the file.
        if let Some(problem) = problems(config, &sha256, &[], source).into_iter().next() {
            return Err(load_error(name, problem));
        }
        let runtime = engine::runtime().map_err(|e| load_error(name, e))?;
        let cache = runtime.cache_path(cache_dir, &sha256);
        let read = || match bytes {
            Some(bytes) => Ok(bytes),
            None => {
                let bytes = std::fs::read(&config.path)?;
                if sha256_hex(&bytes) != sha256 {
                    return Err(std::io::Error::other(
                        "the file changed while it was being loaded; try again",
                    ));
                }
                Ok(bytes)
            }
        };
        let (component, cache_hit) = runtime.component(&cache, read).map_err(|e| {
            load_error(
                name,
                format!("{} is not a valid component: {e:#}", config.path.display()),
            )
        })?;
        let engine = &runtime.engine;
        if let Some(problem) = problems(config, &sha256, &imports(engine, &component), source)
            .into_iter()
            .next()
        {
            return Err(load_error(name, problem));
        }
        let pre = runtime
            .linker()
            .and_then(|l| l.instantiate_pre(&component))
            .map_err(|e| {
                load_error(
                    name,
                    format!("cannot link {}: {e:#}", config.path.display()),
                )
            })?;
        let worlds = Worlds::new(&pre);
        for world in &config.worlds {
            if !worlds.implemented().contains(world) {
                return Err(load_error(
                    name,
                    format!(
                        "configured as {} but {} does not export {} with the expected functions \
                         (check worlds of [[plugins]] name = {name:?} in {source}, or `berth plugin check`)",
                        world.as_str(),
                        config.path.display(),
                        export_name(*world)
                    ),
                ));
            }
        }
        let wants = |w| config.worlds.contains(&w);
        tracing::debug!(
            plugin = name,
            cache_hit,
            elapsed_us = started.elapsed().as_micros() as u64,
            "plugin loaded"
        );
        Ok(Plugin {
            config: Arc::new(config.clone()),
            sha256,
            cache_hit,
            runtime,
            pre,
            live: Mutex::new(None),
            naming: worlds.naming.filter(|_| wants(PluginWorld::NamePolicy)),
            placement: worlds
                .placement
                .filter(|_| wants(PluginWorld::BackendPolicy)),
            hooks: worlds.hooks.filter(|_| wants(PluginWorld::LifecycleHooks)),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn naming(&self) -> Option<&NamePolicyIndices> {
        self.naming.as_ref()
    }

    pub fn placement(&self) -> Option<&BackendPolicyIndices> {
        self.placement.as_ref()
    }

    pub fn hooks(&self) -> Option<&LifecycleHooksIndices> {
        self.hooks.as_ref()
    }

    /// Runs `call` (one export call) on the plugin's instance under the call's budget,
    /// instantiating it first if no call has yet (or the last one failed). Traps, timeouts and
    /// memory exhaustion come back as `Error::PluginFailed` naming the plugin and `function`,
    /// and discard the instance.
    pub fn run<R: Send>(
        &self,
        services: &Arc<dyn HostServices>,
        function: &str,
        call: impl FnOnce(&mut Store<HostState>, &Instance) -> wasmtime::Result<R> + Send,
    ) -> Result<R> {
        let mut slot = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let mut live = slot.take().unwrap_or_else(|| {
            let mut store = Store::new(
                &self.runtime.engine,
                HostState::new(self.config.clone(), services.clone()),
            );
            store.limiter(|state| &mut state.limits);
            store.epoch_deadline_trap();
            Live {
                store,
                instance: None,
            }
        });
        // +1: the first tick may come at any moment after the deadline is set.
        live.store.set_epoch_deadline(
            self.config
                .timeout_ms
                .div_ceil(engine::TICK.as_millis() as u64)
                + 1,
        );
        live.store.data_mut().limits.exceeded = false;
        let said_before = live.store.data().stderr.contents().len();
        let result = {
            let _ticking = self.runtime.ticking();
            outside_async_context(|| {
                let instance = match live.instance {
                    Some(instance) => instance,
                    None => *live.instance.insert(self.pre.instantiate(&mut live.store)?),
                };
                call(&mut live.store, &instance)
            })
        };
        match result {
            Ok(value) => {
                *slot = Some(live);
                Ok(value)
            }
            Err(e) => Err(self.failure(function, &live.store, &e, said_before)),
        }
    }

    /// `said_before`: how much stderr earlier calls left, so the message shows this call's.
    fn failure(
        &self,
        function: &str,
        store: &Store<HostState>,
        e: &wasmtime::Error,
        said_before: usize,
    ) -> Error {
        let config = &self.config;
        let state = store.data();
        let (failure, message) = if state.limits.exceeded {
            (
                PluginFailure::OutOfMemory,
                format!(
                    "tried to grow its memory past memory-mb = {} of [[plugins]] name = {:?}",
                    config.memory_mb, config.name
                ),
            )
        } else if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            (
                PluginFailure::Timeout,
                format!(
                    "no answer within timeout-ms = {} of [[plugins]] name = {:?}",
                    config.timeout_ms, config.name
                ),
            )
        } else {
            let stderr = state.stderr.contents();
            let said = String::from_utf8_lossy(stderr.get(said_before..).unwrap_or_default());
            let said = said.trim();
            let mut message = match e.downcast_ref::<Trap>() {
                Some(trap) => trap.to_string(),
                None => format!("{e:#}"),
            };
            if !said.is_empty() {
                message.push_str(&format!(" (plugin stderr: {said})"));
            }
            (PluginFailure::Trap, message)
        };
        // The caller reports it (or records it under on-error = "allow"): debug here, not twice.
        tracing::debug!(plugin = %config.name, function, %failure, "{message}");
        Error::PluginFailed {
            plugin: config.name.clone(),
            hook: function.to_string(),
            failure,
            message,
        }
    }
}

/// Runs `f` where blocking is allowed. wasmtime-wasi's blocking stream calls (a guest flushing
/// stderr, e.g. while panicking) `block_on` the ambient tokio runtime, which panics when the
/// caller is itself async code: so a plugin call from async code first steps out of it.
fn outside_async_context<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Err(_) => f(),
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        // A current-thread runtime cannot step aside: use a thread of our own.
        Ok(_) => std::thread::scope(|s| s.spawn(f).join().expect("plugin call thread panicked")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(grants: &[&str], pin: Option<&str>) -> PluginConfig {
        let text = format!(
            "[backends.native]\ntype = \"native\"\n[[plugins]]\nname = \"x\"\npath = \"/p/x.wasm\"\nworlds = [\"lifecycle-hooks\"]\ngrants = {grants:?}\n{}",
            pin.map(|p| format!("sha256 = \"{p}\"")).unwrap_or_default()
        );
        berth_core::Config::parse(&text, "b.toml", None)
            .unwrap()
            .plugins
            .remove(0)
    }

    #[test]
    fn grants_cover_berth_imports_only() {
        let imports: Vec<String> = [
            "wasi:cli/environment@0.2.6",
            "berth:plugin/log@0.1.0",
            "berth:plugin/types@0.1.0",
            "berth:plugin/containers@0.1.0",
        ]
        .map(String::from)
        .into();
        let problems = problems(&config(&[], None), "ab", &imports, "b.toml");
        assert_eq!(
            problems,
            [
                "plugin \"x\" imports berth:plugin/containers@0.1.0 but is not granted it: add \"containers\" to grants of [[plugins]] name = \"x\" in b.toml"
            ]
        );
        assert!(
            super::problems(&config(&["containers"], None), "ab", &imports, "b.toml").is_empty()
        );

        let future = vec!["berth:plugin/registry@0.1.0".to_string()];
        let problems = super::problems(&config(&["containers"], None), "ab", &future, "b.toml");
        assert!(problems[0].contains("does not provide"), "{problems:?}");
    }

    #[test]
    fn a_pin_must_match() {
        let pin = "a".repeat(64);
        assert!(problems(&config(&[], Some(&pin)), &pin.to_uppercase(), &[], "b.toml").is_empty());
        let problems = problems(&config(&[], Some(&pin)), &"b".repeat(64), &[], "b.toml");
        assert!(
            problems[0].contains(&format!("expected {pin}, actual {}", "b".repeat(64))),
            "{problems:?}"
        );
    }
}
