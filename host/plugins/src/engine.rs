//! The process-wide wasmtime engine, its epoch ticker and the on-disk component cache.
//!
//! One engine per process: compiled code, the pooling allocator's slots and the ticker are all
//! shared, and nothing is created until the first plugin is loaded (a config without plugins
//! never touches wasmtime). The ticker only runs while a call is in flight, so an idle `berth`
//! process costs no wakeups.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use crate::linker::Linked;
use crate::state::HostState;
use wasmtime::component::{Component, InstancePre};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances: the resolution of `timeout-ms`.
pub(crate) const TICK: Duration = Duration::from_millis(1);

/// The engine plus what keeps its epoch moving.
pub(crate) struct Runtime {
    pub engine: Engine,
    active: Arc<AtomicUsize>,
    ticker: Thread,
    /// Built on first use and shared by every plugin (building one costs as much as loading a
    /// component from the cache), and extended by the WASI groups later plugins import.
    linked: Mutex<Option<Linked>>,
    /// Names a cache file so a different wasmtime version or engine setting never reads it.
    compat: String,
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

/// Starts wasmtime (the engine and the shared linker) on a thread of its own, for a
/// command that will load plugins: it overlaps with the command's own start instead of
/// delaying its first decision. A failure is met again, and reported, by the first load.
pub fn start_engine() {
    let _ = std::thread::Builder::new()
        .name("berth-plugin-engine".into())
        .spawn(|| runtime().map(|runtime| runtime.linked().is_ok()));
}

impl Runtime {
    fn new() -> Result<Runtime, String> {
        let started = std::time::Instant::now();
        let mut config = Config::new();
        config.epoch_interruption(true);
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

        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let compat = format!("{:016x}", hasher.finish());

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
        tracing::debug!(
            elapsed_us = started.elapsed().as_micros() as u64,
            "plugin engine started"
        );
        Ok(Runtime {
            engine,
            active,
            ticker,
            linked: Mutex::new(None),
            compat,
        })
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
        linked.with_wasi_of(imports)?.instantiate_pre(component)
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

    /// Loads a compiled component from the cache, else compiles the bytes `read` returns and
    /// stores the result. Returns whether the cache was hit. Failing to write the cache only
    /// costs the next load.
    pub fn component(
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
        let component = Component::new(&self.engine, read()?)?;
        if let Err(e) = write_atomically(cache, &component.serialize()?) {
            tracing::warn!(path = %cache.display(), error = %e, "cannot cache the compiled plugin");
        }
        Ok((component, false))
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
