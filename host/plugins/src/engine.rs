//! The process-wide wasmtime engine, its epoch ticker and the on-disk component cache.
//!
//! One engine per process: compiled code, the pooling allocator's slots and the ticker are all
//! shared, and nothing is created until the first plugin is loaded (a config without plugins
//! never touches wasmtime). Cranelift is started only to compile what the cache lacks. The
//! ticker only runs while a call is in flight, so an idle `berth` process costs no wakeups.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use berth_core::config::{HostConfig, PluginConfig, PluginWorld};

use crate::linker::Linked;
use crate::state::HostState;
use wasmtime::component::{Component, InstancePre};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances: the resolution of `timeout-ms`.
pub(crate) const TICK: Duration = Duration::from_millis(1);

/// The engine plus what keeps its epoch moving.
pub(crate) struct Runtime {
    /// Runs compiled components; it has no compiler, whose start (detecting the CPU, building
    /// Cranelift's settings) would cost more than the engine itself on every cache hit.
    pub engine: Engine,
    /// Compiles components for `engine`, built on the first cache miss.
    compiler: OnceLock<Result<Engine, String>>,
    active: Arc<AtomicUsize>,
    ticker: Thread,
    /// Built on first use and shared by every plugin (building one costs as much as loading a
    /// component from the cache), and extended by the WASI groups later plugins import.
    linked: Mutex<Option<Linked>>,
    /// Names a cache file so a different wasmtime version or engine setting never reads it.
    compat: String,
    /// Components loaded ahead of the plugin loads that will ask for them, by cache file.
    preloaded: Mutex<HashMap<PathBuf, Preloaded>>,
    /// Signalled when a component being loaded is done (or given up).
    done: Condvar,
}

enum Preloaded {
    /// Some thread is loading it; wait for `done`.
    Loading,
    /// Loaded from the cache file, for the first load that asks.
    Ready(Component),
}

/// A claim on loading one cache file, which other threads wait for: dropped without
/// [`Claim::finish`] (a load of its own, a failure, a panic), it hands the file back.
struct Claim<'a> {
    runtime: &'a Runtime,
    cache: &'a Path,
}

impl Claim<'_> {
    fn finish(self, component: Component) {
        let Claim { runtime, cache } = self;
        std::mem::forget(self);
        runtime
            .preloaded()
            .insert(cache.to_owned(), Preloaded::Ready(component));
        runtime.done.notify_all();
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.runtime.preloaded().remove(self.cache);
        self.runtime.done.notify_all();
    }
}

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// Whether instances come from a pool reserved when the engine starts (see [`pool_instances`]).
static POOLED: AtomicBool = AtomicBool::new(false);

/// For a process that serves calls for long (`berth cri serve`), before its first plugin loads:
/// instances then come from a pool reserved once, which costs about 0.5 ms at the engine's
/// start and makes every later instantiation cheaper. A command instantiates a few plugins
/// once each, so it allocates each instance on demand and starts faster.
pub fn pool_instances() {
    POOLED.store(true, Ordering::Relaxed);
}

/// The shared runtime, created on first use.
pub(crate) fn runtime() -> Result<&'static Runtime, String> {
    RUNTIME
        .get_or_init(Runtime::new)
        .as_ref()
        .map_err(Clone::clone)
}

/// `<state-dir>/cache/plugins/`: compiled components and the hashes of plugin files.
pub(crate) fn cache_dir(host: &HostConfig) -> PathBuf {
    host.state_dir.join("cache").join("plugins")
}

/// Starts wasmtime (the engine and the shared linker) on a thread of its own, for a command
/// that will load the plugins of `config` that play one of `worlds`, and loads their compiled
/// components from the cache there: it overlaps with the command's own start instead of
/// delaying its first decision. Nothing is checked or decided here: each plugin's load still
/// reads its file's state, checks its pin and grants and links it, and only takes the
/// component made here when it is the one that load asks for. A failure is met again, and
/// reported, by that load.
pub fn start_engine(config: &berth_core::Config, worlds: &[PluginWorld]) {
    let cache_dir = cache_dir(&config.host);
    let plugins: Vec<PluginConfig> = config
        .plugins
        .iter()
        .filter(|p| p.worlds.iter().any(|w| worlds.contains(w)))
        .cloned()
        .collect();
    let _ = std::thread::Builder::new()
        .name("berth-plugin-engine".into())
        .spawn(move || {
            let Ok(runtime) = runtime() else { return };
            // Last first: the command's thread loads the first plugin itself meanwhile, and
            // the two meet in the middle.
            for plugin in plugins.iter().rev() {
                if let Some(sha256) = crate::plugin::known_sha256(plugin, &cache_dir) {
                    runtime.preload(&runtime.cache_path(&cache_dir, &sha256));
                }
            }
            drop(runtime.linked());
        });
}

impl Runtime {
    fn new() -> Result<Runtime, String> {
        let started = std::time::Instant::now();
        let mut config = Runtime::config();
        config.enable_compiler(false);
        if POOLED.load(Ordering::Relaxed) {
            // Sized for a server's few plugins with a few calls in flight at once: every slot
            // is reserved (virtual memory, page tables) when the engine starts.
            let mut pool = PoolingAllocationConfig::new();
            pool.total_component_instances(16)
                .total_core_instances(128)
                .total_memories(16)
                .total_tables(64)
                // Calls are synchronous and run on the caller's stack: no fiber stacks to pool.
                .total_stacks(0);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine =
            Engine::new(&config).map_err(|e| format!("cannot create the wasmtime engine: {e}"))?;

        // Without a compiler the hash covers wasmtime's version and the engine's settings; a
        // cache entry compiled for another CPU fails wasmtime's own check at load, and is
        // compiled again.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let compat = format!("{:016x}", hasher.finish());
        let (active, ticker) = Runtime::spawn_ticker(&engine)?;
        tracing::debug!(
            elapsed_us = started.elapsed().as_micros() as u64,
            "plugin engine started"
        );
        Ok(Runtime {
            engine,
            compiler: OnceLock::new(),
            active,
            ticker,
            linked: Mutex::new(None),
            compat,
            preloaded: Mutex::new(HashMap::new()),
            done: Condvar::new(),
        })
    }

    /// The settings compiled code depends on, shared by both engines (how instances are
    /// allocated is the running engine's alone).
    fn config() -> Config {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config
    }

    /// The engine that compiles for [`Runtime::engine`]: its settings, and Cranelift.
    fn compiler(&self) -> wasmtime::Result<&Engine> {
        let compiler = self.compiler.get_or_init(|| {
            Engine::new(&Runtime::config())
                .map_err(|e| format!("cannot create the wasmtime compiler: {e}"))
        });
        compiler
            .as_ref()
            .map_err(|e| wasmtime::Error::msg(e.clone()))
    }

    /// Compiles a component from its bytes, as [`Runtime::engine`] runs it.
    pub fn compile(&self, bytes: &[u8]) -> wasmtime::Result<Component> {
        self.runnable(&self.compiler()?.precompile_component(bytes)?)
    }

    /// What [`Runtime::compiler`] just compiled, ready to run.
    fn runnable(&self, compiled: &[u8]) -> wasmtime::Result<Component> {
        // SAFETY: compiled in this process by an engine of the same settings.
        unsafe { Component::deserialize(&self.engine, compiled) }
    }

    fn spawn_ticker(engine: &Engine) -> Result<(Arc<AtomicUsize>, Thread), String> {
        let active = Arc::new(AtomicUsize::new(0));
        let ticker = {
            let (engine, active) = (engine.clone(), active.clone());
            std::thread::Builder::new()
                .name("berth-plugin-epoch".into())
                .spawn(move || {
                    loop {
                        if active.load(Ordering::Acquire) == 0 {
                            std::thread::park();
                        } else {
                            std::thread::sleep(TICK);
                            engine.increment_epoch();
                        }
                    }
                })
                .map_err(|e| format!("cannot start the plugin epoch ticker: {e}"))?
                .thread()
                .clone()
        };
        Ok((active, ticker))
    }

    /// The shared linker, built on first use.
    fn linked(&self) -> wasmtime::Result<std::sync::MutexGuard<'_, Option<Linked>>> {
        let mut linked = self.linked.lock().unwrap_or_else(|p| p.into_inner());
        if linked.is_none() {
            let started = std::time::Instant::now();
            *linked = Some(Linked::new(&self.engine)?);
            tracing::debug!(
                elapsed_us = started.elapsed().as_micros() as u64,
                "plugin linker built"
            );
        }
        Ok(linked)
    }

    /// Links `component`, whose imports are `imports`, through the shared linker.
    pub fn instantiate_pre(
        &self,
        component: &Component,
        imports: &[String],
    ) -> wasmtime::Result<InstancePre<HostState>> {
        let mut linked = self.linked()?;
        let linked = linked.as_mut().expect("built above");
        linked.with_imports(imports)?.instantiate_pre(component)
    }

    /// Keeps the epoch ticking until the guard drops.
    pub fn ticking(&self) -> Ticking<'_> {
        if self.active.fetch_add(1, Ordering::AcqRel) == 0 {
            self.ticker.unpark();
        }
        Ticking(self)
    }

    /// `<dir>/<sha256>-<engine compatibility hash>.cwasm`.
    pub fn cache_path(&self, dir: &Path, sha256: &str) -> PathBuf {
        dir.join(format!("{sha256}-{}.cwasm", self.compat))
    }

    fn preloaded(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Preloaded>> {
        self.preloaded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The component preloaded from `cache` (taken: it serves one load), else a claim on
    /// loading it; waits while another thread loads it.
    fn claim<'a>(&'a self, cache: &'a Path) -> Result<Component, Claim<'a>> {
        let mut preloaded = self.preloaded();
        loop {
            match preloaded.remove(cache) {
                Some(Preloaded::Ready(component)) => return Ok(component),
                Some(Preloaded::Loading) => {
                    preloaded.insert(cache.to_owned(), Preloaded::Loading);
                    preloaded = self.done.wait(preloaded).unwrap_or_else(|p| p.into_inner());
                }
                None => {
                    preloaded.insert(cache.to_owned(), Preloaded::Loading);
                    return Err(Claim {
                        runtime: self,
                        cache,
                    });
                }
            }
        }
    }

    /// Loads `cache` ahead of the plugin load that will ask for it, if it exists and no
    /// thread has it yet. Never compiles: a miss is that load's to compile and report.
    fn preload(&self, cache: &Path) {
        let Err(claim) = self.claim(cache) else {
            return;
        };
        // SAFETY: as in `load`.
        if let Ok(component) = unsafe { Component::deserialize_file(&self.engine, cache) } {
            claim.finish(component);
        }
    }

    /// Loads a compiled component from the cache (or takes it preloaded), else compiles the
    /// bytes `read` returns and stores the result. Returns whether the cache was hit. Failing
    /// to write the cache only costs the next load.
    pub fn component(
        &self,
        cache: &Path,
        read: impl FnOnce() -> std::io::Result<Vec<u8>>,
    ) -> wasmtime::Result<(Component, bool)> {
        match self.claim(cache) {
            Ok(preloaded) => Ok((preloaded, true)),
            // Held while loading, so a preload of the same file waits rather than repeats it.
            Err(_claim) => self.load(cache, read),
        }
    }

    fn load(
        &self,
        cache: &Path,
        read: impl FnOnce() -> std::io::Result<Vec<u8>>,
    ) -> wasmtime::Result<(Component, bool)> {
        if cache.exists() {
            // SAFETY: cache files are written only by `berth` (below), under its state dir, and
            // are keyed by the engine's compatibility hash; wasmtime still checks the header.
            match unsafe { Component::deserialize_file(&self.engine, cache) } {
                Ok(component) => return Ok((component, true)),
                Err(e) => {
                    tracing::warn!(path = %cache.display(), error = %e, "ignoring unusable plugin cache entry")
                }
            }
        }
        let compiled = self.compiler()?.precompile_component(&read()?)?;
        if let Err(e) = write_atomically(cache, &compiled) {
            tracing::warn!(path = %cache.display(), error = %e, "cannot cache the compiled plugin");
        }
        Ok((self.runnable(&compiled)?, false))
    }
}

/// Dropping it stops the ticker once no call is in flight.
pub(crate) struct Ticking<'a>(&'a Runtime);

impl Drop for Ticking<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Concurrent berth processes may compile the same plugin; rename makes the last writer win
/// without anyone reading a half-written file.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("cache paths have a parent");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap_or_default().display(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest valid component: the preamble alone.
    const EMPTY: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

    fn unread() -> std::io::Result<Vec<u8>> {
        panic!("the component's file was read")
    }

    #[test]
    fn a_preloaded_component_serves_one_load_without_a_read() {
        let runtime = runtime().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = runtime.cache_path(dir.path(), "preloaded");
        // A miss compiles with the compiler engine and writes what the runtime engine loads.
        let (_, hit) = runtime.component(&cache, || Ok(EMPTY.to_vec())).unwrap();
        assert!(!hit);
        assert!(cache.exists());

        runtime.preload(&cache);
        let (_, hit) = runtime.component(&cache, unread).unwrap();
        assert!(hit);
        // Taken: the next load reads the cache file itself.
        std::fs::remove_file(&cache).unwrap();
        let (_, hit) = runtime.component(&cache, || Ok(EMPTY.to_vec())).unwrap();
        assert!(!hit);
    }

    #[test]
    fn a_preload_never_compiles_and_a_bad_entry_is_compiled_again() {
        let runtime = runtime().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = runtime.cache_path(dir.path(), "bad");
        runtime.preload(&cache);
        assert!(!cache.exists(), "a preload compiled");
        std::fs::write(&cache, b"not compiled code").unwrap();
        runtime.preload(&cache);
        let (_, hit) = runtime.component(&cache, || Ok(EMPTY.to_vec())).unwrap();
        assert!(!hit);
        let (_, hit) = runtime.component(&cache, unread).unwrap();
        assert!(hit, "the entry was rewritten");
    }

    #[test]
    fn a_load_waits_for_a_claim_and_a_dropped_claim_hands_it_back() {
        let runtime = runtime().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = runtime.cache_path(dir.path(), "claimed");
        let Err(claim) = runtime.claim(&cache) else {
            panic!("nobody held it")
        };
        std::thread::scope(|s| {
            let waiting = s.spawn(|| runtime.component(&cache, || Ok(EMPTY.to_vec())));
            std::thread::sleep(Duration::from_millis(20));
            assert!(
                !waiting.is_finished(),
                "the load did not wait for the claim"
            );
            // As when a preload fails or panics: the waiting load takes over.
            drop(claim);
            let (_, hit) = waiting.join().unwrap().unwrap();
            assert!(!hit);
        });
    }
}
