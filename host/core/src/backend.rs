//! The one trait every container backend implements.
//!
//! The configured `type` of a `[backends.<name>]` table picks an implementation; the rest of berth
//! only ever sees `dyn ContainerBackend`. An operation a backend cannot perform returns
//! [`Error::NotSupported`](crate::Error::NotSupported), never a silent no-op.

use async_trait::async_trait;

use std::path::Path;

use crate::capability::{Capabilities, Capability};
use crate::error::{Error, Result};

use crate::snapshot::{SnapshotInfo, SnapshotMount};
use crate::types::{
    AttachStdin, ContainerInfo, ContainerSpec, ContainerStats, ExecIo, ExecSpec, ExecStreams,
    ImageInfo, Limits, ListFilter, LogSink, PathStat, PullProgress, RemoveOptions, StopOptions,
};

/// A container a listing asks its backend about, with what the caller's record holds.
#[derive(Debug, Clone, Copy)]
pub struct Listed<'a> {
    pub id: &'a str,
    pub spec: &'a ContainerSpec,
    pub created: chrono::DateTime<chrono::Utc>,
}

/// Output handling for `logs`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming until the container exits.
    pub follow: bool,
    /// `--tail N`: only the last N lines of what was written so far.
    pub tail: Option<usize>,
    /// `--since`, `--until`: only output written in this window.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// `--timestamps`: each line prefixed with when it was written (RFC 3339, nanoseconds).
    pub timestamps: bool,
}

impl LogOptions {
    /// Whether anything but `follow` is asked (what the `log-filters` capability covers).
    pub fn filtered(&self) -> bool {
        self.tail.is_some() || self.since.is_some() || self.until.is_some() || self.timestamps
    }
}

/// How many `inspect` calls the default [`ContainerBackend::statuses`] keeps in flight.
const INSPECTS_AT_ONCE: usize = 16;

#[async_trait]
pub trait ContainerBackend: Send + Sync {
    /// The configured name, e.g. `native` for `[backends.native]`.
    fn name(&self) -> &str;

    /// What this backend honours. The engine refuses, before anything is created, a spec field
    /// or an operation that needs a capability outside this set; a backend method may rely on
    /// that and need not re-check.
    fn capabilities(&self) -> Capabilities;

    /// Ping the backend; its version. An unreachable backend is an
    /// [`Error::Unavailable`](crate::Error::Unavailable) that names the endpoint.
    async fn version(&self) -> Result<String>;

    /// Create (but do not start) a container. `id` is berth's id for it; backends that assign
    /// their own ids return theirs in the info.
    async fn create(&self, id: &str, spec: &ContainerSpec) -> Result<ContainerInfo>;

    async fn start(&self, id: &str) -> Result<()>;

    /// Signal, wait up to `timeout`, then SIGKILL if `force` or fail with a timeout error.
    /// Stopping a container that is not running succeeds.
    async fn stop(&self, id: &str, options: &StopOptions) -> Result<()>;

    async fn kill(&self, id: &str, signal: i32) -> Result<()>;

    /// Remove a container; a running one only with `force` (which kills it first).
    async fn remove(&self, id: &str, options: RemoveOptions) -> Result<()>;

    async fn list(&self, filter: &ListFilter) -> Result<Vec<ContainerInfo>>;

    async fn inspect(&self, id: &str) -> Result<ContainerInfo>;

    /// `inspect` of each of `containers`, in order, for a listing that holds their specs: a
    /// backend may take name, image, labels and limits from them rather than read its own
    /// copies, and answer all in one pass. By default `inspect` of each, a few at once (a
    /// daemon answers each in a round trip of its own).
    async fn statuses(&self, containers: &[Listed<'_>]) -> Vec<Result<ContainerInfo>> {
        let mut infos = Vec::with_capacity(containers.len());
        for some in containers.chunks(INSPECTS_AT_ONCE) {
            let asked: Vec<_> = some.iter().map(|c| self.inspect(c.id)).collect();
            infos.extend(futures_util::future::join_all(asked).await);
        }
        infos
    }

    /// Block until the container exits; returns its exit code.
    async fn wait(&self, id: &str) -> Result<i32>;

    /// Write the container's output so far (and, with `follow`, until it exits) into `sink`.
    async fn logs(&self, id: &str, options: LogOptions, sink: &mut dyn LogSink) -> Result<()>;

    /// Run a process in a running container with `io` as its stdio; returns its exit code.
    async fn exec(&self, id: &str, spec: &ExecSpec, io: ExecIo) -> Result<i32> {
        let _ = (id, spec, io);
        Err(self.not_supported("exec"))
    }

    /// Attaches `io` to a running container: its output from now on into `io`'s stdout and
    /// stderr, and `io`'s stdin into the container's (when it was created with `stdin_open`)
    /// as `stdin` says. Ends when the container's output does, or at a detach.
    async fn attach(&self, id: &str, io: ExecStreams, stdin: AttachStdin) -> Result<()> {
        let _ = (id, io, stdin);
        Err(self.not_supported("attach"))
    }

    /// Changes a running container's limits in place; limits not given stay. The new ones
    /// hold for the rest of the container's life, restarts included.
    async fn update_limits(&self, id: &str, limits: &Limits) -> Result<()> {
        let _ = (id, limits);
        Err(self.not_supported("update"))
    }

    /// What `path` (absolute, in the container's filesystem) is, without following a symlink
    /// at its end; [`Error::NotFound`] when nothing is there.
    async fn stat_path(&self, id: &str, path: &str) -> Result<PathStat> {
        let _ = (id, path);
        Err(self.lacks(Capability::CopyFiles))
    }

    /// Writes into `tar` a tar of `path` in the container: one top entry named after the
    /// path's last component (with everything below it), or, for a path ending in `/.`, the
    /// directory's entries themselves. A symlink is archived as a link.
    async fn copy_out(&self, id: &str, path: &str, tar: std::fs::File) -> Result<()> {
        let _ = (id, path, tar);
        Err(self.lacks(Capability::CopyFiles))
    }

    /// Unpacks the tar in `tar` into the container's existing directory `dir`, entries with
    /// the owners the tar gives them.
    async fn copy_in(&self, id: &str, dir: &str, tar: std::fs::File) -> Result<()> {
        let _ = (id, dir, tar);
        Err(self.lacks(Capability::CopyFiles))
    }

    /// A one-shot snapshot of a container's resource use.
    async fn stats(&self, id: &str) -> Result<ContainerStats> {
        let _ = id;
        Err(self.not_supported("stats"))
    }

    /// Cleans what a killed `berth` left in this backend's own state, sparing the containers
    /// in `known` (every id berth has a record for): half-made containers, operations left
    /// half done, staging directories, mounts and cgroups nobody owns. One line per thing it
    /// removed (with `dry_run`, would remove). Backends whose daemon keeps its own state
    /// consistent have nothing to do.
    async fn collect_garbage(
        &self,
        known: &std::collections::BTreeSet<String>,
        dry_run: bool,
    ) -> Result<Vec<String>> {
        let _ = (known, dry_run);
        Ok(Vec::new())
    }

    /// Fetch an image from its registry, reached and logged in to as `access` says,
    /// reporting progress as it goes.
    async fn pull_image(
        &self,
        reference: &str,
        access: &crate::RegistryAccess,
        progress: &mut dyn PullProgress,
    ) -> Result<ImageInfo> {
        let _ = (reference, access, progress);
        Err(self.not_supported("image pull"))
    }

    /// Load a docker-archive or OCI layout (directory or tar); `name` tags it. Reports a
    /// layer's progress as a pull does.
    async fn import_image(
        &self,
        source: &Path,
        name: Option<&str>,
        progress: &mut dyn PullProgress,
    ) -> Result<ImageInfo> {
        let _ = (source, name, progress);
        Err(self.not_supported("image import"))
    }

    /// Load a plain root filesystem directory as a one-layer image called `name`.
    async fn import_rootfs(&self, dir: &Path, name: &str) -> Result<ImageInfo> {
        let _ = (dir, name);
        Err(self.lacks(Capability::ImportRootfs))
    }

    /// Named images (untagged ones are left out).
    async fn list_images(&self) -> Result<Vec<ImageInfo>> {
        Err(self.not_supported("image ls"))
    }

    /// One image by reference or id; a missing one is [`Error::NotFound`].
    async fn inspect_image(&self, reference: &str) -> Result<ImageInfo> {
        let _ = reference;
        Err(self.not_supported("image inspect"))
    }

    /// Remove an image; one in use only with `force`.
    async fn remove_image(&self, reference: &str, force: bool) -> Result<()> {
        let _ = (reference, force);
        Err(self.not_supported("image rm"))
    }

    /// Every snapshot this backend keeps for berth.
    async fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        Err(self.not_supported("snapshot ls"))
    }

    /// A new active snapshot `key`, on committed `parent` (empty without); its mounts.
    async fn prepare_snapshot(
        &self,
        key: &str,
        parent: Option<&str>,
    ) -> Result<Vec<SnapshotMount>> {
        let _ = (key, parent);
        Err(self.not_supported("snapshot prepare"))
    }

    /// Freezes active snapshot `key` as committed snapshot `name` (`key` is gone after).
    async fn commit_snapshot(&self, name: &str, key: &str) -> Result<()> {
        let _ = (name, key);
        Err(self.not_supported("snapshot commit"))
    }

    /// The mounts that make snapshot `key`'s filesystem.
    async fn snapshot_mounts(&self, key: &str) -> Result<Vec<SnapshotMount>> {
        let _ = key;
        Err(self.not_supported("snapshot mounts"))
    }

    /// Removes snapshot `key` (one with children cannot go).
    async fn remove_snapshot(&self, key: &str) -> Result<()> {
        let _ = key;
        Err(self.not_supported("snapshot rm"))
    }

    /// Versions a container: stop it, commit its rootfs as `name` (default
    /// `<id>-v<nanos>`), continue on a new active snapshot of that version, start it again.
    /// Returns the version's name.
    async fn commit(&self, id: &str, name: Option<&str>) -> Result<String> {
        let _ = (id, name);
        Err(self.not_supported("commit"))
    }

    /// Puts a container back on an earlier version from [`commit`](Self::commit): stop it,
    /// continue on a new active snapshot of `version`, start it again.
    async fn rollback(&self, id: &str, version: &str) -> Result<()> {
        let _ = (id, version);
        Err(self.not_supported("rollback"))
    }

    /// The error for an operation this backend cannot perform.
    fn not_supported(&self, operation: &'static str) -> Error {
        Error::NotSupported {
            backend: self.name().to_string(),
            operation: operation.to_string(),
            hint: String::new(),
        }
    }

    /// The error for a capability this backend lacks.
    fn lacks(&self, capability: Capability) -> Error {
        Error::NotSupported {
            backend: self.name().to_string(),
            operation: capability.asked_by().to_string(),
            hint: String::new(),
        }
    }
}
