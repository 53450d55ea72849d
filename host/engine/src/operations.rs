//! Operations that are one backend call, each checked against the backend's capabilities
//! first, so a backend that cannot do something is refused here with the backends that can,
//! rather than half-served.

use std::path::{Path, PathBuf};

use berth_core::{
    Capabilities, Capability, ContainerStats, ExecIo, ExecSpec, ImageInfo, Limits, LogOptions,
    LogSink, PullProgress, Result, SnapshotInfo, SnapshotMount, capability, snapshot,
};

use crate::{ContainerRecord, Engine};

fn only(capability: Capability) -> Capabilities {
    Capabilities::of(&[capability])
}

impl Engine {
    pub async fn kill(&self, record: &ContainerRecord, signal: i32) -> Result<()> {
        // As docker and podman: a container a user killed is not restarted by its policy.
        self.stop_requested(record)?;
        self.backend(&record.backend)?
            .kill(&record.id, signal)
            .await
    }

    pub async fn logs(
        &self,
        record: &ContainerRecord,
        options: LogOptions,
        sink: &mut dyn LogSink,
    ) -> Result<()> {
        if options.filtered() {
            self.backends
                .require(&record.backend, only(Capability::LogFilters))?;
        }
        self.backend(&record.backend)?
            .logs(&record.id, options, sink)
            .await
    }

    /// Blocks until the container exits; its exit code.
    pub async fn wait(&self, record: &ContainerRecord) -> Result<i32> {
        self.backend(&record.backend)?.wait(&record.id).await
    }

    pub async fn exec(&self, record: &ContainerRecord, spec: &ExecSpec, io: ExecIo) -> Result<i32> {
        self.backends
            .require(&record.backend, capability::needed_by_exec(spec, &io))?;
        self.backend(&record.backend)?
            .exec(&record.id, spec, io)
            .await
    }

    /// Attaches `io` to a running container (see the backend's `attach`).
    pub async fn attach(
        &self,
        record: &ContainerRecord,
        io: berth_core::ExecStreams,
        stdin: berth_core::AttachStdin,
    ) -> Result<()> {
        self.backends
            .require(&record.backend, only(Capability::Attach))?;
        self.backend(&record.backend)?
            .attach(&record.id, io, stdin)
            .await
    }

    /// `berth update`: a running container's limits changed in place (limits not given stay),
    /// and kept in its record.
    pub async fn update_limits(&self, record: &ContainerRecord, limits: &Limits) -> Result<()> {
        let mut updated = record.spec.clone();
        updated.limits = updated.limits.updated_by(limits);
        berth_core::validate::spec(&updated)?;
        self.backends
            .require(&record.backend, only(Capability::UpdateLimits))?;
        let _lock = self.records.lock(&record.id)?;
        self.backend(&record.backend)?
            .update_limits(&record.id, limits)
            .await?;
        self.records.respec(&record.id, updated)
    }

    pub async fn stats(&self, record: &ContainerRecord) -> Result<ContainerStats> {
        self.backends
            .require(&record.backend, only(Capability::Stats))?;
        self.backend(&record.backend)?.stats(&record.id).await
    }

    /// Freezes the container's filesystem as a version; the version's name.
    pub async fn commit(&self, record: &ContainerRecord, version: Option<&str>) -> Result<String> {
        self.backends
            .require(&record.backend, only(Capability::Commit))?;
        self.backend(&record.backend)?
            .commit(&record.id, version)
            .await
    }

    pub async fn rollback(&self, record: &ContainerRecord, version: &str) -> Result<()> {
        self.backends
            .require(&record.backend, only(Capability::Rollback))?;
        self.backend(&record.backend)?
            .rollback(&record.id, version)
            .await
    }

    // ---- images, on one backend (`None`: the first configured) ---------------------------

    /// The backend `requested` names (else the first), refused unless it has `capability`.
    fn able(
        &self,
        requested: Option<&str>,
        capability: Capability,
    ) -> Result<&std::sync::Arc<dyn berth_core::ContainerBackend>> {
        let (name, backend) = self.backends.get_or_first(requested)?;
        self.backends.require(name, only(capability))?;
        Ok(backend)
    }

    /// Pulls `reference` as the user `berth login` stored for its registry, or as
    /// `credentials` when given.
    pub async fn pull_image(
        &self,
        backend: Option<&str>,
        reference: &str,
        credentials: Option<berth_core::Credentials>,
        progress: &mut dyn PullProgress,
    ) -> Result<ImageInfo> {
        let backend = self.able(backend, Capability::ImagePull)?;
        let access = self.registry_access(reference, credentials)?;
        backend.pull_image(reference, &access, progress).await
    }

    pub async fn import_image(
        &self,
        backend: Option<&str>,
        source: &Path,
        name: Option<&str>,
        progress: &mut dyn PullProgress,
    ) -> Result<ImageInfo> {
        self.able(backend, Capability::ImageImport)?
            .import_image(source, name, progress)
            .await
    }

    pub async fn import_rootfs(
        &self,
        backend: Option<&str>,
        dir: &Path,
        name: &str,
    ) -> Result<ImageInfo> {
        self.able(backend, Capability::ImportRootfs)?
            .import_rootfs(dir, name)
            .await
    }

    pub async fn list_images(&self, backend: Option<&str>) -> Result<Vec<ImageInfo>> {
        let (_, backend) = self.backends.get_or_first(backend)?;
        backend.list_images().await
    }

    pub async fn inspect_image(&self, backend: Option<&str>, reference: &str) -> Result<ImageInfo> {
        let (_, backend) = self.backends.get_or_first(backend)?;
        backend.inspect_image(reference).await
    }

    /// Removes an image. An image held by containers a killed `berth` left half made is not
    /// in use: such leftovers are collected (as `berth gc` would) and the removal tried again.
    pub async fn remove_image(
        self: &std::sync::Arc<Self>,
        backend: Option<&str>,
        reference: &str,
        force: bool,
    ) -> Result<()> {
        let (_, image_backend) = self.backends.get_or_first(backend)?;
        match image_backend.remove_image(reference, force).await {
            Err(e) if e.kind() == berth_core::ErrorKind::Conflict => {
                let collected = self.gc(crate::GcOptions::default()).await?;
                if collected.removed.is_empty() {
                    return Err(e);
                }
                image_backend.remove_image(reference, force).await
            }
            other => other,
        }
    }

    // ---- snapshots, on one backend (`None`: the first configured) ------------------------

    pub async fn list_snapshots(&self, backend: Option<&str>) -> Result<Vec<SnapshotInfo>> {
        self.able(backend, Capability::Snapshots)?
            .list_snapshots()
            .await
    }

    pub async fn prepare_snapshot(
        &self,
        backend: Option<&str>,
        key: &str,
        parent: Option<&str>,
    ) -> Result<Vec<SnapshotMount>> {
        self.able(backend, Capability::Snapshots)?
            .prepare_snapshot(key, parent)
            .await
    }

    pub async fn commit_snapshot(
        &self,
        backend: Option<&str>,
        name: &str,
        key: &str,
    ) -> Result<()> {
        self.able(backend, Capability::Snapshots)?
            .commit_snapshot(name, key)
            .await
    }

    pub async fn snapshot_mounts(
        &self,
        backend: Option<&str>,
        key: &str,
    ) -> Result<Vec<SnapshotMount>> {
        self.able(backend, Capability::Snapshots)?
            .snapshot_mounts(key)
            .await
    }

    pub async fn remove_snapshot(&self, backend: Option<&str>, key: &str) -> Result<()> {
        self.able(backend, Capability::Snapshots)?
            .remove_snapshot(key)
            .await
    }

    /// `key` and its ancestors, down to the base layer.
    pub async fn snapshot_lineage(&self, backend: Option<&str>, key: &str) -> Result<Vec<String>> {
        snapshot::lineage(key, &self.list_snapshots(backend).await?)
    }

    /// Mounts snapshot `key` on a new directory under the run dir; the directory.
    pub async fn mount_snapshot(&self, backend: Option<&str>, key: &str) -> Result<PathBuf> {
        let mounts = self.snapshot_mounts(backend, key).await?;
        crate::mounts::mount_snapshot(&self.snapshot_mounts_root(), key, &mounts)
    }

    /// Undoes [`Engine::mount_snapshot`]; refuses any directory it did not make.
    pub fn unmount_snapshot(&self, dir: &Path) -> Result<PathBuf> {
        crate::mounts::unmount_snapshot(&self.snapshot_mounts_root(), dir)
    }

    /// Where `snapshot mount` makes its directories; `unmount` touches nothing else.
    fn snapshot_mounts_root(&self) -> PathBuf {
        self.store.run_dir().join("snapshot-mounts")
    }
}
