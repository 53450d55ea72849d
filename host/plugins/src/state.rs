//! What a plugin's store holds: the plugin's identity and settings, the host services it is
//! granted (and nothing else), an empty WASI context, and the memory cap.
//!
//! A call that traps, times out or runs out of memory drops the store with its instance, so
//! such a plugin leaves nothing behind for the next call.

use std::sync::Arc;

use berth_core::config::PluginConfig;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::interfaces::HostServices;
use crate::interfaces::log::LogBudget;

/// Bytes of guest stderr kept for error messages (a Rust panic message fits easily).
const STDERR_CAPACITY: usize = 4096;

pub(crate) struct HostState {
    pub plugin: Arc<PluginConfig>,
    /// Only what the plugin's `grants` list: an interface it was not granted finds nothing here.
    pub services: HostServices,
    pub limits: MemoryCap,
    /// What the plugin may still write to the host's log (shared by all its stores).
    pub log: Arc<LogBudget>,
    /// Guest stderr, so a panic message can be shown with the trap.
    pub stderr: MemoryOutputPipe,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl HostState {
    pub fn new(
        plugin: Arc<PluginConfig>,
        services: HostServices,
        log: Arc<LogBudget>,
    ) -> HostState {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        // No preopens, env, args, network or stdin: wasip2 guests import these interfaces, and
        // get nothing through them.
        let wasi = WasiCtx::builder().stderr(stderr.clone()).build();
        let limits = MemoryCap {
            max_bytes: usize::try_from(plugin.memory_mb.saturating_mul(1 << 20))
                .unwrap_or(usize::MAX),
            exceeded: false,
        };
        HostState {
            plugin,
            services,
            limits,
            log,
            stderr,
            wasi,
            table: ResourceTable::new(),
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// `memory-mb`, remembering whether the guest hit it so a resulting trap reads as
/// "out of memory" rather than whatever the guest's allocator did next.
pub(crate) struct MemoryCap {
    max_bytes: usize,
    pub exceeded: bool,
}

/// Table growth is not a budget users set; this only stops a runaway guest.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
