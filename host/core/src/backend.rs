//! The one trait every container backend implements.
//!
//! The configured `type` of a `[backends.<name>]` table picks an implementation; the rest of berth
//! only ever sees `dyn ContainerBackend`. An operation a backend cannot perform returns
//! [`Error::NotSupported`](crate::Error::NotSupported), never a silent no-op.

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::types::{
    BackendInfo, ContainerInfo, ContainerSpec, ExecSpec, ListFilter, LogSink, StopOptions,
};

/// Output handling for `logs`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming until the container exits.
    pub follow: bool,
}

#[async_trait]
pub trait ContainerBackend: Send + Sync {
    /// The configured name, e.g. `native` for `[backends.native]`.
    fn name(&self) -> &str;

    /// Ping the backend and describe it. An unreachable backend is an
    /// [`Error::Unavailable`](crate::Error::Unavailable) that names the endpoint.
    async fn info(&self) -> Result<BackendInfo>;

    /// Create (but do not start) a container. `id` is berth's id for it; backends that assign
    /// their own ids return theirs in the info.
    async fn create(&self, id: &str, spec: &ContainerSpec) -> Result<ContainerInfo>;

    async fn start(&self, id: &str) -> Result<()>;

    /// Signal, wait up to `timeout`, then SIGKILL if `force` or fail with a timeout error.
    /// Stopping a container that is not running succeeds.
    async fn stop(&self, id: &str, options: &StopOptions) -> Result<()>;

    async fn kill(&self, id: &str, signal: i32) -> Result<()>;

    /// Remove a container; a running one only with `force` (which kills it first).
    async fn remove(&self, id: &str, force: bool) -> Result<()>;

    async fn list(&self, filter: &ListFilter) -> Result<Vec<ContainerInfo>>;

    async fn inspect(&self, id: &str) -> Result<ContainerInfo>;

    /// Block until the container exits; returns its exit code.
    async fn wait(&self, id: &str) -> Result<i32>;

    /// Write the container's output so far (and, with `follow`, until it exits) into `sink`.
    async fn logs(&self, id: &str, options: LogOptions, sink: &mut dyn LogSink) -> Result<()>;

    /// Run a process in a running container with this process's stdio; returns its exit code.
    async fn exec(&self, id: &str, spec: &ExecSpec) -> Result<i32> {
        let _ = (id, spec);
        Err(self.not_supported("exec"))
    }

    /// The error for an operation this backend cannot perform.
    fn not_supported(&self, operation: &'static str) -> Error {
        Error::NotSupported {
            backend: self.name().to_string(),
            operation,
        }
    }
}
