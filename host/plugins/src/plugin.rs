//! One loaded plugin: its compiled component, the checks that decide whether it may load
//! (a regular file within `max-size-mb`, sha256 pin, ABI version, grants, what the host
//! provides, exported worlds and their types), and the budgeted call path.
//!
//! A plugin is instantiated from a pre-linked `InstancePre` on its first call, and that
//! instance serves the process's later calls (instantiating afresh each time cost more than
//! most decisions). Every call runs under an epoch deadline of `timeout-ms` and a `memory-mb`
//! cap; a call that traps, times out or runs out of memory discards the instance, so the next
//! call starts fresh and a misbehaving plugin costs one failed call and nothing more.

use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_core::config::{Grant, PluginConfig, PluginWorld};
use berth_core::{Error, PluginFailure, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Instance, InstancePre};
use wasmtime::{Engine, Store, Trap};

use crate::answers;
use crate::engine::{self, Runtime};
use crate::interfaces::HostServices;
use crate::interfaces::log::LogBudget;
use crate::state::HostState;
use crate::worlds::{self, Abi, Hooks, Naming, Placement, PodHooks, Worlds};

/// The package every berth host interface lives in.
pub(crate) const PACKAGE: &str = "berth:plugin/";

/// The interface and version of a berth import such as `berth:plugin/log@0.4.0` (the version
/// empty if it names none); `None` for any other package.
pub(crate) fn berth_import(import: &str) -> Option<(&str, &str)> {
    let rest = import.strip_prefix(PACKAGE)?;
    Some(rest.split_once('@').unwrap_or((rest, "")))
}

/// Interfaces every plugin may import.
const ALWAYS_GRANTED: &[&str] = &["types", "log", "config"];

pub(crate) struct Plugin {
    pub config: Arc<PluginConfig>,
    pub sha256: String,
    /// Whether the compiled code came from the on-disk cache.
    pub cache_hit: bool,
    /// The `berth:plugin` version the component was built against.
    pub abi: Abi,
    runtime: &'static Runtime,
    pre: InstancePre<HostState>,
    /// What the plugin is granted of the host's services: all its store ever holds.
    services: HostServices,
    naming: Option<Naming>,
    placement: Option<Placement>,
    hooks: Option<Hooks>,
    pod_hooks: Option<PodHooks>,
    /// What the plugin may still write to the host's log in this process.
    log: Arc<LogBudget>,
    /// The instance serving calls, until one fails.
    live: Mutex<Option<Live>>,
}

struct Live {
    store: Store<HostState>,
    /// `None` until the first call instantiates it (under that call's budget).
    instance: Option<Instance>,
}

fn load_error(plugin: &str, message: impl Into<String>) -> Error {
    answers::failed(plugin, "load", PluginFailure::Load, message)
}

/// Why a plugin's path could not be read as a component.
#[derive(Debug)]
pub(crate) enum Unreadable {
    /// The system refused (no such file, no permission).
    Io(std::io::Error),
    /// The path is something berth will not read as a component (a FIFO, a device, a
    /// directory, a file past `max-size-mb`): the whole sentence, with the fix.
    Refused(String),
}

impl Unreadable {
    /// For the `read` of the component cache, which speaks `io::Error`.
    fn into_io(self) -> std::io::Error {
        match self {
            Unreadable::Io(e) => e,
            Unreadable::Refused(why) => std::io::Error::other(why),
        }
    }
}

/// Opens a component file and refuses anything but a regular file of at most `max_bytes`,
/// before reading a byte: opening a FIFO for reading would wait for a writer (so it is opened
/// `O_NONBLOCK`, and the check is on the opened file, not on a path that could change), and
/// a device would be read without end.
pub(crate) fn open_component(path: &Path, max_bytes: u64) -> Result<(File, Metadata), Unreadable> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(Unreadable::Io)?;
    let meta = file.metadata().map_err(Unreadable::Io)?;
    let kind = meta.file_type();
    let what = if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_char_device() {
        Some("a character device")
    } else if kind.is_block_device() {
        Some("a block device")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        Some("not a file")
    };
    if let Some(what) = what {
        return Err(Unreadable::Refused(format!(
            "path {} is {what}, not a regular file (point path at the plugin's .wasm component)",
            path.display()
        )));
    }
    if meta.len() > max_bytes {
        return Err(Unreadable::Refused(too_big(path, meta.len(), max_bytes)));
    }
    Ok((file, meta))
}

fn too_big(path: &Path, size: u64, max_bytes: u64) -> String {
    format!(
        "path {} is {size} bytes, more than max-size-mb = {} (raise max-size-mb if the \
         component really is that large)",
        path.display(),
        max_bytes >> 20
    )
}

/// Reads an opened component, never more than `max_bytes` (it may have grown since it was
/// opened).
pub(crate) fn read_component(
    path: &Path,
    mut file: File,
    max_bytes: u64,
) -> Result<Vec<u8>, Unreadable> {
    let mut bytes = Vec::new();
    (&mut file)
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(Unreadable::Io)?;
    if bytes.len() as u64 > max_bytes {
        return Err(Unreadable::Refused(too_big(
            path,
            bytes.len() as u64,
            max_bytes,
        )));
    }
    Ok(bytes)
}

/// `max-size-mb` of an entry, in bytes.
pub(crate) fn max_bytes(config: &PluginConfig) -> u64 {
    config.max_size_mb.saturating_mul(1 << 20)
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
    fn of(path: &Path, meta: &Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        let ns = |secs: i64, nanos: i64| secs as i128 * 1_000_000_000 + nanos as i128;
        FileStamp {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        }
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

/// The sha256 of `config`'s component as far as it is known without reading the file: its pin,
/// or the hash recorded for the file as it is now.
pub(crate) fn known_sha256(config: &PluginConfig, cache_dir: &Path) -> Option<String> {
    if let Some(pin) = &config.sha256 {
        return Some(pin.to_ascii_lowercase());
    }
    let meta = std::fs::metadata(&config.path).ok()?;
    FileStamp::of(&config.path, &meta).remembered(cache_dir)
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
        let Some((interface, version)) = berth_import(import) else {
            continue;
        };
        if Abi::of(version).is_none() {
            let (newest, older) = Abi::ALL.split_last().expect("a berth loads some ABI");
            let older: Vec<_> = older.iter().map(|a| a.as_str()).collect();
            problems.push(format!(
                "plugin {name:?} imports {import}, but this berth loads berth:plugin {} and \
                 {newest} only (rebuild the plugin against the wit/ of this berth, or upgrade \
                 berth)",
                older.join(", ")
            ));
            continue;
        }
        if ALWAYS_GRANTED.contains(&interface) {
            continue;
        }
        match Grant::from_interface(interface) {
            Some(grant) if config.grants.contains(&grant) => {}
            Some(grant) => problems.push(format!(
                "plugin {name:?} imports {import} but is not granted it: add \"{grant}\" to \
                 grants of [[plugins]] name = {name:?} in {source}"
            )),
            None => problems.push(format!(
                "plugin {name:?} imports {import}, which this berth does not provide (built \
                 against a newer berth:plugin WIT?)"
            )),
        }
    }
    problems
}

/// The granted interfaces a plugin imports that the embedding host has nothing behind, in
/// words naming the plugin and the interface: a fault of the host (or of a plugin meant for
/// another host), found at load rather than at the plugin's first call.
fn unprovided(config: &PluginConfig, imports: &[String], services: &HostServices) -> Vec<String> {
    imports
        .iter()
        .filter_map(|import| {
            let (interface, _) = berth_import(import)?;
            let grant = Grant::from_interface(interface)?;
            (!services.provides(grant)).then(|| {
                format!(
                    "plugin {:?} imports {import}, which this host does not provide (the \
                     program embedding berth's plugin runtime has no {grant} service; load the \
                     plugin where it has one)",
                    config.name
                )
            })
        })
        .collect()
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

impl Plugin {
    /// Reads, verifies, compiles (or loads from `cache_dir`) and links one plugin.
    /// `services` is what the host provides; the plugin keeps what its grants allow.
    pub fn load(
        config: &PluginConfig,
        cache_dir: &Path,
        source: &str,
        services: &HostServices,
    ) -> Result<Plugin> {
        let name = config.name.as_str();
        let started = Instant::now();
        let unreadable = |e: Unreadable| match e {
            Unreadable::Io(e) => load_error(
                name,
                format!(
                    "cannot read {}: {e} (check path of [[plugins]] name = {name:?} in {source})",
                    config.path.display()
                ),
            ),
            Unreadable::Refused(why) => Error::Config {
                path: source.to_string(),
                message: format!("[[plugins]] name = {name:?}: {why}"),
            },
        };
        let max_bytes = max_bytes(config);
        let (file, meta) = open_component(&config.path, max_bytes).map_err(unreadable)?;
        let stamp = FileStamp::of(&config.path, &meta);
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
                let bytes = read_component(&config.path, file, max_bytes).map_err(unreadable)?;
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
                let (file, _) =
                    open_component(&config.path, max_bytes).map_err(Unreadable::into_io)?;
                let bytes =
                    read_component(&config.path, file, max_bytes).map_err(Unreadable::into_io)?;
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
        // Where a load's time goes: finding the component, then linking it.
        let component_us = started.elapsed().as_micros() as u64;
        let engine = &runtime.engine;
        let imports = imports(engine, &component);
        if let Some(problem) = problems(config, &sha256, &imports, source)
            .into_iter()
            .chain(unprovided(config, &imports, services))
            .next()
        {
            return Err(load_error(name, problem));
        }
        let pre = runtime.instantiate_pre(&component, &imports).map_err(|e| {
            load_error(
                name,
                format!("cannot link {}: {e:#}", config.path.display()),
            )
        })?;
        let linked_us = started.elapsed().as_micros() as u64;
        let worlds = Worlds::new(&pre);
        for world in &config.worlds {
            if let Some(why) = worlds.broken(*world) {
                return Err(load_error(
                    name,
                    format!(
                        "configured as {} but {} cannot be called as one: {why}",
                        world.as_str(),
                        config.path.display()
                    ),
                ));
            }
            if !worlds.implemented().contains(world) {
                let expected: Vec<_> = Abi::ALL
                    .iter()
                    .rev()
                    .filter(|abi| **abi >= worlds::since(*world))
                    .map(|abi| worlds::export_name(*world, *abi))
                    .collect();
                return Err(load_error(
                    name,
                    format!(
                        "configured as {} but {} does not export {} with the expected functions \
                         (check worlds of [[plugins]] name = {name:?} in {source}, or `berth plugin check`)",
                        world.as_str(),
                        config.path.display(),
                        expected.join(" or ")
                    ),
                ));
            }
        }
        let abi = worlds
            .abi()
            .expect("config lists at least one world, and each was found above");
        let wants = |w| config.worlds.contains(&w);
        tracing::debug!(
            plugin = name,
            cache_hit,
            component_us,
            linked_us,
            abi = abi.as_str(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "plugin loaded"
        );
        Ok(Plugin {
            config: Arc::new(config.clone()),
            sha256,
            cache_hit,
            abi,
            runtime,
            pre,
            services: services.granted(&config.grants),
            log: Arc::new(LogBudget::default()),
            live: Mutex::new(None),
            naming: worlds.naming.filter(|_| wants(PluginWorld::NamePolicy)),
            placement: worlds
                .placement
                .filter(|_| wants(PluginWorld::BackendPolicy)),
            hooks: worlds.hooks.filter(|_| wants(PluginWorld::LifecycleHooks)),
            pod_hooks: worlds
                .pod_hooks
                .filter(|_| wants(PluginWorld::PodLifecycleHooks)),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn naming(&self) -> Option<&Naming> {
        self.naming.as_ref()
    }

    pub fn placement(&self) -> Option<&Placement> {
        self.placement.as_ref()
    }

    pub fn hooks(&self) -> Option<&Hooks> {
        self.hooks.as_ref()
    }

    pub fn pod_hooks(&self) -> Option<&PodHooks> {
        self.pod_hooks.as_ref()
    }

    /// Runs `call` (one export call) on the plugin's instance under the call's budget,
    /// instantiating it first if no call has yet (or the last one failed). Traps, timeouts and
    /// memory exhaustion come back as `Error::PluginFailed` naming the plugin and `function`,
    /// and discard the instance.
    pub fn run<R: Send>(
        &self,
        function: &str,
        call: impl FnOnce(&mut Store<HostState>, &Instance) -> wasmtime::Result<R> + Send,
    ) -> Result<R> {
        // The smaller of this plugin's timeout and what the operation's budget has left; a
        // spent budget fails the call before it starts.
        let budget = crate::budget::current();
        let timeout = Duration::from_millis(self.config.timeout_ms);
        let allowed = budget.as_ref().map_or(timeout, |b| b.left().min(timeout));
        if allowed.is_zero() {
            let total = budget.map(|b| b.total().as_millis()).unwrap_or_default();
            return Err(answers::failed(
                &self.config.name,
                function,
                PluginFailure::Timeout,
                format!(
                    "not asked: the operation's plugin budget ([pipeline] budget-ms = {total}) \
                     is spent"
                ),
            ));
        }
        let mut slot = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let mut live = slot.take().unwrap_or_else(|| {
            let mut store = Store::new(
                &self.runtime.engine,
                HostState::new(self.config.clone(), self.services.clone(), self.log.clone()),
            );
            store.limiter(|state| &mut state.limits);
            store.epoch_deadline_trap();
            Live {
                store,
                instance: None,
            }
        });
        // +1: the first tick may come at any moment after the deadline is set.
        let ticks = (allowed.as_millis() as u64).div_ceil(engine::TICK.as_millis() as u64);
        live.store.set_epoch_deadline(ticks + 1);
        let started = Instant::now();
        live.store.data_mut().limits.exceeded = false;
        let said_before = live.store.data().stderr.contents().len();
        self.log.start_call();
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
        self.log.end_call(&self.config.name, function);
        if let Some(budget) = &budget {
            budget.spend(started.elapsed());
        }
        match result {
            Ok(value) => {
                *slot = Some(live);
                Ok(value)
            }
            Err(e) => {
                let cut_short = budget.filter(|_| allowed < timeout);
                Err(self.failure(function, &live.store, &e, said_before, cut_short, allowed))
            }
        }
    }

    /// `said_before`: how much stderr earlier calls left, so the message shows this call's;
    /// `budget`: the operation's, when what it had left (`allowed`) cut the call's deadline.
    fn failure(
        &self,
        function: &str,
        store: &Store<HostState>,
        e: &wasmtime::Error,
        said_before: usize,
        budget: Option<crate::budget::Budget>,
        allowed: Duration,
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
            let message = match budget {
                Some(budget) => format!(
                    "no answer within the {} ms the operation's plugin budget had left \
                     ([pipeline] budget-ms = {})",
                    allowed.as_millis(),
                    budget.total().as_millis()
                ),
                None => format!(
                    "no answer within timeout-ms = {} of [[plugins]] name = {:?}",
                    config.timeout_ms, config.name
                ),
            };
            (PluginFailure::Timeout, message)
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
        let error = answers::failed(&config.name, function, failure, message);
        // The caller reports it (or records it under on-error = "allow"): debug here, not twice.
        let logged = berth_core::text::escaped(&error.to_string()).into_owned();
        tracing::debug!(plugin = %config.name, function, %failure, "{logged}");
        error
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

        let future = vec!["berth:plugin/registry@0.2.0".to_string()];
        let problems = super::problems(&config(&["containers"], None), "ab", &future, "b.toml");
        assert!(problems[0].contains("does not provide"), "{problems:?}");

        let newer = vec!["berth:plugin/log@0.5.0".to_string()];
        let problems = super::problems(&config(&[], None), "ab", &newer, "b.toml");
        assert_eq!(
            problems,
            [
                "plugin \"x\" imports berth:plugin/log@0.5.0, but this berth loads berth:plugin \
                 0.1.0, 0.2.0, 0.3.0 and 0.4.0 only (rebuild the plugin against the wit/ of this \
                 berth, or upgrade berth)"
            ]
        );
    }

    #[test]
    fn an_interface_the_host_lacks_is_named() {
        let imports: Vec<String> = ["berth:plugin/log@0.2.0", "berth:plugin/quotas@0.2.0"]
            .map(String::from)
            .into();
        let found = unprovided(
            &config(&["quotas"], None),
            &imports,
            &HostServices::default(),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(
                "plugin \"x\" imports berth:plugin/quotas@0.2.0, which this host does not provide"
            ),
            "{found:?}"
        );
    }

    #[test]
    fn only_a_regular_file_within_the_bound_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let refused = |path: &Path, max: u64| match open_component(path, max) {
            Err(Unreadable::Refused(why)) => why,
            Err(Unreadable::Io(e)) => panic!("{}: {e}", path.display()),
            Ok(_) => panic!("{} was opened", path.display()),
        };
        let fifo = dir.path().join("fifo.wasm");
        nix_mkfifo(&fifo);
        // Opening it does not wait for a writer, and it is refused as what it is.
        assert!(refused(&fifo, 1 << 20).contains("is a FIFO, not a regular file"));
        assert!(refused(Path::new("/dev/zero"), 1 << 20).contains("is a character device"));
        assert!(refused(dir.path(), 1 << 20).contains("is a directory"));

        let file = dir.path().join("big.wasm");
        std::fs::write(&file, vec![0u8; 3 << 20]).unwrap();
        assert!(refused(&file, 2 << 20).contains("is 3145728 bytes, more than max-size-mb = 2"));
        let (opened, _) = open_component(&file, 3 << 20).unwrap();
        assert_eq!(
            read_component(&file, opened, 3 << 20).unwrap().len(),
            3 << 20
        );
        // A file that grew after it was opened is not read past the bound.
        let (opened, _) = open_component(&file, 3 << 20).unwrap();
        std::fs::write(&file, vec![0u8; 4 << 20]).unwrap();
        assert!(matches!(
            read_component(&file, opened, 3 << 20),
            Err(Unreadable::Refused(_))
        ));
        assert!(matches!(
            open_component(&dir.path().join("missing"), 1),
            Err(Unreadable::Io(_))
        ));
    }

    fn nix_mkfifo(path: &Path) {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
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
