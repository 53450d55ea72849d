//! berth's containerd backend: containers, tasks, images and snapshots over containerd's gRPC
//! API (`containerd-client`), every call in the configured namespace.
//!
//! A berth container is a containerd container whose id is berth's id, with a snapshot of the
//! same key prepared on its image's top layer. Starting it creates a task whose stdout and
//! stderr the shim writes straight into two files under the run dir (`file://` stdio), so no
//! berth process has to stay behind to copy output; `logs` reads them.

pub mod exec;
pub mod host_files;
mod import;
pub mod logger;
pub mod rootfs;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use berth_core::config::ContainerdBackendConfig;
use berth_core::logs::Shaper;
use berth_core::{
    AttachStdin, Capabilities, Capability, ContainerBackend, ContainerInfo, ContainerSpec,
    ContainerState, Error, ExecIo, ExecSpec, ExecStreams, ImageInfo, Limits, ListFilter,
    LogOptions, LogSink, Mount, Object, PathStat, PullProgress, RemoveOptions, Result,
    SnapshotInfo, SnapshotKind, SnapshotMount, StopOptions, Store,
};
use berth_oci::config::ParsedConfig;
use berth_oci::spec::{SpecInput, build_spec, swap_limit_supported};
use berth_oci::{Document, digest::chain_id, files, platform};
use chrono::{DateTime, Utc};
use containerd_client::services::v1::{
    CloseIoRequest, Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteImageRequest, DeleteProcessRequest, DeleteTaskRequest, ExecProcessRequest,
    GetContainerRequest, GetImageRequest, GetRequest, KillRequest, ListContainersRequest,
    ListImagesRequest, ReadContentRequest, ResizePtyRequest, StartRequest, UpdateContainerRequest,
    UpdateTaskRequest, WaitRequest, container::Runtime, containers_client::ContainersClient,
    content_client::ContentClient, images_client::ImagesClient, snapshots,
    tasks_client::TasksClient, version_client::VersionClient,
};
use containerd_client::tonic::{self, Code, Request, transport::Channel};
use containerd_client::types::v1::Status;
use tokio::sync::OnceCell;

/// The label that names a container for `berth` (containerd has ids only).
const NAME_LABEL: &str = "berth.name";
/// The label that gives an app of a pod its pod's cgroup (JSON), made at every start.
const POD_CGROUP_LABEL: &str = "berth.pod-cgroup";
/// Where the container's output also goes in the CRI's log format.
const CRI_LOG_LABEL: &str = "berth.cri-log";
/// A container's stdin kept open: `open`, or `once` (closed when its first client leaves).
const STDIN_LABEL: &str = "berth.stdin";
const SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
const PROCESS_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";
const RESOURCES_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an attachment reads on once the task's logger has sent all it wrote.
const LAST_OUTPUT: Duration = Duration::from_millis(100);
/// How long an attachment on a terminal waits for its client's first size.
const FIRST_SIZE: Duration = Duration::from_millis(100);
/// The cgroup parent of berth's containerd containers (`/berth/<id>`), as on native by default.
const CGROUP_PARENT: &str = "berth";

pub struct ContainerdBackend {
    name: String,
    config: ContainerdBackendConfig,
    store: Store,
    logger_exe: PathBuf,
    channel: OnceCell<Channel>,
}

impl ContainerdBackend {
    /// Checks the configuration; nothing is contacted until the first call.
    /// `logger_exe` is the `berth` binary, whose `main` calls [`logger::dispatch`]: the
    /// shim runs it as each task's logging binary.
    pub fn new(
        name: &str,
        config: &ContainerdBackendConfig,
        store: Store,
        logger_exe: PathBuf,
    ) -> Result<Self> {
        let valid_namespace = !config.namespace.is_empty()
            && config
                .namespace
                .split(['.', '_', '-'])
                .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric()));
        if !valid_namespace {
            return Err(Error::invalid(
                format!("namespace {:?} of [backends.{name}]", config.namespace),
                "containerd namespaces are letters and digits, joined by '.', '_' or '-'",
            ));
        }
        Ok(ContainerdBackend {
            name: name.to_string(),
            config: config.clone(),
            store,
            logger_exe,
            channel: OnceCell::new(),
        })
    }

    async fn channel(&self) -> Result<Channel> {
        self.channel
            .get_or_try_init(|| async {
                let socket = &self.config.socket;
                let connect = containerd_client::connect(socket);
                match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                    Ok(Ok(channel)) => Ok(channel),
                    Ok(Err(e)) => Err(self.unreachable(root_cause(&e))),
                    Err(_) => Err(self.unreachable("no answer within 5 s".into())),
                }
            })
            .await
            .cloned()
    }

    fn unreachable(&self, reason: String) -> Error {
        Error::Unavailable {
            service: format!("backend {:?}", self.name),
            endpoint: self.config.socket.display().to_string(),
            reason,
            hint: format!(
                "is containerd running? start it with `containerd &` or `systemctl start \
                 containerd`, or point [backends.{}].socket at it",
                self.name
            ),
        }
    }

    /// `message` as a request in the configured namespace.
    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.metadata_mut().insert(
            "containerd-namespace",
            self.config
                .namespace
                .parse()
                .expect("namespace checked in new()"),
        );
        request
    }

    /// A gRPC failure as berth's error for `operation` on `object`.
    fn error(&self, operation: &'static str, object: &str, status: tonic::Status) -> Error {
        match status.code() {
            Code::NotFound => Error::not_found(kind_of(operation), object),
            Code::AlreadyExists => Error::AlreadyExists {
                kind: kind_of(operation),
                name: object.to_string(),
                hint: String::new(),
            },
            Code::Unavailable => self.unreachable(status.message().to_string()),
            _ => Error::backend(&self.name, operation, object, status.message()),
        }
    }

    /// The task's log: timed JSON lines its logging binary appends (see [`logger`]).
    fn log_path(&self, id: &str) -> PathBuf {
        self.store
            .run_dir()
            .join("containerd")
            .join(&self.config.namespace)
            .join(format!("{id}.log"))
    }

    /// Where container `id`'s logger serves attachments.
    fn attach_socket(&self, id: &str) -> PathBuf {
        berth_core::attach::socket_path(&self.store, "containerd", id)
    }

    /// Sizes the terminal of container `id`'s task (`exec_id` empty) or of one of its execs.
    async fn resize(&self, id: &str, exec_id: &str, size: berth_core::TerminalSize) {
        let Ok(channel) = self.channel().await else {
            return;
        };
        let _ = TasksClient::new(channel)
            .resize_pty(self.request(ResizePtyRequest {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
                width: size.cols.into(),
                height: size.rows.into(),
            }))
            .await;
    }

    /// Passes every size from `resizes` on to the terminal of `exec_id` (the task's when
    /// empty); never ends.
    async fn follow_sizes(&self, id: &str, exec_id: &str, resizes: Option<berth_core::Resizes>) {
        if let Some(mut resizes) = resizes {
            while let Some(size) = resizes.recv().await {
                self.resize(id, exec_id, size).await;
            }
        }
        std::future::pending().await
    }

    // ---- images ------------------------------------------------------------------------

    async fn image_names(&self) -> Result<Vec<containerd_client::services::v1::Image>> {
        let mut images = ImagesClient::new(self.channel().await?);
        Ok(images
            .list(self.request(ListImagesRequest::default()))
            .await
            .map_err(|e| self.error("list", "images", e))?
            .into_inner()
            .images)
    }

    /// The stored image `reference` means (see [`berth_oci::reference::find`]).
    async fn find_image(&self, reference: &str) -> Result<containerd_client::services::v1::Image> {
        require("image reference", reference)?;
        let stored = self.image_names().await?;
        let names: Vec<String> = stored.iter().map(|i| i.name.clone()).collect();
        let found = berth_oci::reference::find(reference, &names).ok_or_else(|| {
            Error::not_found(berth_core::Object::Image, reference).with_hint(format!(
                "import it into namespace {:?} (`ctr -n {} images import FILE`)",
                self.config.namespace, self.config.namespace
            ))
        })?;
        let mut images = ImagesClient::new(self.channel().await?);
        images
            .get(self.request(GetImageRequest {
                name: found.clone(),
            }))
            .await
            .map_err(|e| self.error("inspect", found, e))?
            .into_inner()
            .image
            .ok_or_else(|| Error::not_found(berth_core::Object::Image, found.as_str()))
    }

    async fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let mut content = ContentClient::new(self.channel().await?);
        let mut stream = content
            .read(self.request(ReadContentRequest {
                digest: digest.to_string(),
                ..Default::default()
            }))
            .await
            .map_err(|e| self.error("read", digest, e))?
            .into_inner();
        let mut data = Vec::new();
        while let Some(chunk) = stream
            .message()
            .await
            .map_err(|e| self.error("read", digest, e))?
        {
            data.extend_from_slice(&chunk.data);
        }
        Ok(data)
    }

    /// The manifest or index stored as `digest`.
    async fn read_document(&self, digest: &str) -> Result<Document> {
        let bytes = self.read_blob(digest).await?;
        Document::parse(&bytes).map_err(|m| corrupt_blob(digest, m))
    }

    /// The image's config for this platform, the config's digest, and the bytes of its
    /// (compressed) layers.
    async fn image_config(
        &self,
        image: &containerd_client::services::v1::Image,
    ) -> Result<(ParsedConfig, String, u64)> {
        let target = image.target.as_ref().ok_or_else(|| {
            Error::not_found(berth_core::Object::ImageTarget, image.name.as_str())
        })?;
        let mut document = self.read_document(&target.digest).await?;
        if let Document::Index(index) = &document {
            let entry = platform::select(index.manifests(), &image.name)?;
            document = self.read_document(entry.digest().as_ref()).await?;
        }
        let Document::Manifest(manifest) = document else {
            return Err(corrupt_blob(
                &target.digest,
                "an index points at another index, not at a manifest".into(),
            ));
        };
        let size = manifest.layers().iter().map(|l| l.size()).sum();
        let digest = manifest.config().digest().to_string();
        let bytes = self.read_blob(&digest).await?;
        let config = berth_oci::config::parse(&bytes).map_err(|m| corrupt_blob(&digest, m))?;
        Ok((config, digest, size))
    }

    async fn image_info(
        &self,
        image: &containerd_client::services::v1::Image,
    ) -> Result<ImageInfo> {
        let (config, digest, size) = self.image_config(image).await?;
        let created = config
            .oci
            .created()
            .as_deref()
            .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
            .map(|c| c.with_timezone(&Utc));
        Ok(ImageInfo {
            id: digest.trim_start_matches("sha256:").to_string(),
            names: vec![image.name.clone()],
            size,
            created,
            backend: self.name.clone(),
            os: config.defaults.os,
            architecture: config.defaults.architecture,
            variant: config.defaults.variant,
            env: config.defaults.env,
            user: config.defaults.user.filter(|u| !u.is_empty()),
        })
    }

    // ---- containers --------------------------------------------------------------------

    async fn container(&self, id: &str) -> Result<Container> {
        require("container id", id)?;
        let mut containers = ContainersClient::new(self.channel().await?);
        containers
            .get(self.request(GetContainerRequest { id: id.to_string() }))
            .await
            .map_err(|e| self.error("inspect", id, e))?
            .into_inner()
            .container
            .ok_or_else(|| Error::not_found(berth_core::Object::Container, id))
    }

    /// Whether the container's task runs.
    async fn task_running(&self, id: &str) -> Result<bool> {
        Ok(self
            .task(id)
            .await?
            .is_some_and(|t| Status::try_from(t.status) == Ok(Status::Running)))
    }

    /// A conflict, with `hint`, unless the container's task runs.
    async fn require_running(&self, id: &str, hint: &str) -> Result<()> {
        if self.task_running(id).await? {
            return Ok(());
        }
        Err(Error::conflict(format!("container {id}"), "it is not running").with_hint(hint))
    }

    /// The container's task, if it has one.
    async fn task(&self, id: &str) -> Result<Option<containerd_client::types::v1::Process>> {
        let mut tasks = TasksClient::new(self.channel().await?);
        match tasks
            .get(self.request(GetRequest {
                container_id: id.to_string(),
                ..Default::default()
            }))
            .await
        {
            Ok(response) => Ok(response.into_inner().process),
            Err(e) if e.code() == Code::NotFound => Ok(None),
            Err(e) => Err(self.error("inspect", id, e)),
        }
    }

    fn info_of(
        &self,
        container: &Container,
        task: Option<&containerd_client::types::v1::Process>,
    ) -> ContainerInfo {
        let status = task.map(|t| Status::try_from(t.status).unwrap_or(Status::Unknown));
        let state = match status {
            None | Some(Status::Created) => ContainerState::Created,
            Some(Status::Running | Status::Paused | Status::Pausing) => ContainerState::Running,
            Some(Status::Stopped) => ContainerState::Stopped,
            Some(Status::Unknown) => ContainerState::Dead,
        };
        let mut labels: BTreeMap<String, String> = container
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let name = labels
            .remove(NAME_LABEL)
            .unwrap_or_else(|| container.id.clone());
        labels.remove(berth_core::STORE_LABEL);
        labels.remove(POD_CGROUP_LABEL);
        labels.remove(CRI_LOG_LABEL);
        ContainerInfo {
            id: container.id.clone(),
            name,
            image: container.image.clone(),
            state,
            pid: task.filter(|_| state.is_running()).map(|t| t.pid),
            exit_code: task
                .filter(|_| state == ContainerState::Stopped)
                .map(|t| t.exit_status as i32),
            created: timestamp(container.created_at.as_ref()).unwrap_or_else(Utc::now),
            started: None,
            finished: task.and_then(|t| timestamp(t.exited_at.as_ref())),
            labels,
            backend: self.name.clone(),
            status_detail: None,
            ip_address: None,
            networks: Vec::new(),
            ports: Vec::new(),
            limits: None,
            restart_count: 0,
        }
    }

    async fn snapshots(&self) -> Result<snapshots::snapshots_client::SnapshotsClient<Channel>> {
        Ok(snapshots::snapshots_client::SnapshotsClient::new(
            self.channel().await?,
        ))
    }

    async fn rootfs_mounts(&self, key: &str) -> Result<Vec<containerd_client::types::Mount>> {
        require("snapshot key", key)?;
        let mut snapshots = self.snapshots().await?;
        Ok(snapshots
            .mounts(self.request(snapshots::MountsRequest {
                snapshotter: self.config.snapshotter.clone(),
                key: key.to_string(),
            }))
            .await
            .map_err(|e| self.error("mount", key, e))?
            .into_inner()
            .mounts)
    }

    /// A snapshot `key` on `parent`, replacing one left over under the same key; its mounts.
    async fn prepare_rootfs(
        &self,
        key: &str,
        parent: &str,
    ) -> Result<Vec<containerd_client::types::Mount>> {
        let mut snapshots = self.snapshots().await?;
        let _ = snapshots
            .remove(self.request(snapshots::RemoveSnapshotRequest {
                snapshotter: self.config.snapshotter.clone(),
                key: key.to_string(),
            }))
            .await;
        let prepared = snapshots
            .prepare(self.request(snapshots::PrepareSnapshotRequest {
                snapshotter: self.config.snapshotter.clone(),
                key: key.to_string(),
                parent: parent.to_string(),
                labels: gc_root(),
            }))
            .await
            .map_err(|e| match e.code() {
                Code::NotFound => Error::not_found(berth_core::Object::UnpackedLayers, parent)
                    .with_hint(format!(
                        "the image is not unpacked for snapshotter {:?}; pull or import it \
                         again (`berth image --backend containerd pull|import`)",
                        self.config.snapshotter
                    )),
                _ => self.error("prepare", key, e),
            })?;
        Ok(prepared.into_inner().mounts)
    }

    /// The runtime spec of container `id`, whose image's user names are looked up in its
    /// prepared rootfs (`rootfs`, the snapshot's mounts).
    fn runtime_spec(
        &self,
        id: &str,
        spec: &ContainerSpec,
        config: &ParsedConfig,
        rootfs: Vec<containerd_client::types::Mount>,
    ) -> Result<Vec<u8>> {
        let files =
            rootfs::SnapshotFiles::new(rootfs, self.store.run_dir().join("containerd-rootfs"));
        let runtime_spec = build_spec(&SpecInput {
            id,
            spec,
            image: &config.defaults,
            cgroup_parent: CGROUP_PARENT,
            files: &files,
            swap_limit: swap_limit_supported(),
        })?;
        serde_json::to_vec(&runtime_spec).map_err(|e| Error::invalid("runtime spec", e.to_string()))
    }

    /// Removes snapshot `key` if it is there.
    async fn discard_snapshot(&self, key: &str) -> Result<()> {
        let mut snapshots = self.snapshots().await?;
        match snapshots
            .remove(self.request(snapshots::RemoveSnapshotRequest {
                snapshotter: self.config.snapshotter.clone(),
                key: key.to_string(),
            }))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Code::NotFound => Ok(()),
            Err(e) => Err(self.error("remove", key, e)),
        }
    }

    /// The container again, now on snapshot `key` (containerd cannot move a container to
    /// another snapshot, so the record is replaced; its task must be gone).
    async fn recreate_on(&self, container: Container, key: &str) -> Result<()> {
        let id = container.id.clone();
        let mut containers = ContainersClient::new(self.channel().await?);
        containers
            .delete(self.request(DeleteContainerRequest { id: id.clone() }))
            .await
            .map_err(|e| self.error("remove", &id, e))?;
        let moved = Container {
            snapshot_key: key.to_string(),
            created_at: None,
            updated_at: None,
            ..container
        };
        containers
            .create(self.request(CreateContainerRequest {
                container: Some(moved),
            }))
            .await
            .map_err(|e| self.error("create", &id, e))?;
        Ok(())
    }

    /// Runs `f` on the container's files: a live task's as its processes see them (volumes
    /// included), else where its rootfs snapshot is mounted (by the shim of a finished task),
    /// else the snapshot mounted on a scratch directory for the while, which `berth gc` takes
    /// down if a killed `berth` leaves it.
    async fn with_files<T: Send + 'static>(
        &self,
        id: &str,
        f: impl FnOnce(&files::Root) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let live = |status: i32| {
            matches!(
                Status::try_from(status),
                Ok(Status::Running | Status::Created | Status::Paused)
            )
        };
        let root = match self.task(id).await? {
            Some(task) if task.pid > 0 && live(task.status) => {
                Some(PathBuf::from(format!("/proc/{}/root", task.pid)))
            }
            _ => None,
        };
        let mounts = match root {
            Some(_) => Vec::new(),
            None => {
                let container = self.container(id).await?;
                self.rootfs_mounts(&container.snapshot_key)
                    .await?
                    .into_iter()
                    .map(snapshot_mount)
                    .collect()
            }
        };
        // Named by this process, so gc spares the scratch of a copy still running.
        let scratch = self
            .copy_scratch()
            .join(format!("{id}.{}.{}", std::process::id(), nanos()));
        tokio::task::spawn_blocking(move || {
            let root = match root.or_else(|| already_mounted(&mounts)) {
                Some(root) => return f(&files::Root::open(&root)?),
                None => scratch,
            };
            berth_core::store::create_dir_all(&root)?;
            let result = berth_core::mounts::mount_all(&mounts, &root)
                .inspect(|()| berth_core::crash::point("containerd.copy.mounted"))
                .and_then(|()| files::Root::open(&root))
                .and_then(|files| f(&files));
            release_scratch(&root)?;
            result
        })
        .await
        .map_err(|e| Error::io("copying files", std::io::Error::other(e)))?
    }

    /// Where [`Self::with_files`] mounts a stopped container's snapshot.
    fn copy_scratch(&self) -> PathBuf {
        self.store.run_dir().join("containerd-copy")
    }

    /// Stops the container for a version change and drops its finished task; whether it ran.
    async fn park(&self, id: &str) -> Result<bool> {
        let running = self.task_running(id).await?;
        if running {
            self.stop(id, &StopOptions::default()).await?;
        }
        self.delete_task(id).await?;
        Ok(running)
    }

    /// Deletes the container's task if it has one (it must not be running).
    async fn delete_task(&self, id: &str) -> Result<()> {
        let mut tasks = TasksClient::new(self.channel().await?);
        match tasks
            .delete(self.request(DeleteTaskRequest {
                container_id: id.to_string(),
            }))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Code::NotFound => Ok(()),
            Err(e) => Err(self.error("remove", id, e)),
        }
    }

    async fn signal(&self, id: &str, signal: i32) -> Result<()> {
        let mut tasks = TasksClient::new(self.channel().await?);
        match tasks
            .kill(self.request(KillRequest {
                container_id: id.to_string(),
                signal: signal as u32,
                all: true,
                ..Default::default()
            }))
            .await
        {
            Ok(_) => Ok(()),
            // Exited meanwhile: the signal has nothing left to do.
            Err(e) if e.code() == Code::NotFound => Ok(()),
            Err(e) if e.message().contains("process already finished") => Ok(()),
            Err(e) => Err(self.error("kill", id, e)),
        }
    }

    /// A failed start: a missing command is docker's 127, the rest a backend error.
    fn start_error(&self, id: &str, status: tonic::Status) -> Error {
        let message = status.message();
        if message.contains("executable file not found") || message.contains("no such file") {
            Error::CommandNotFound {
                container: id.to_string(),
                message: message.to_string(),
            }
        } else {
            self.error("start", id, status)
        }
    }

    /// Waits for the task to exit; its exit code.
    async fn wait_task(&self, id: &str) -> Result<i32> {
        self.wait_process(id, "").await
    }

    /// Waits for the task's process `exec_id` (the task itself when empty); its exit code.
    /// Kills an exec that outlived its timeout; the timeout as the exec's error.
    async fn exec_timed_out(
        &self,
        tasks: &mut TasksClient<Channel>,
        id: &str,
        exec_id: &str,
        limit: std::time::Duration,
    ) -> Error {
        let _ = tasks
            .kill(self.request(KillRequest {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
                signal: libc::SIGKILL as u32,
                all: false,
            }))
            .await;
        let _ = tokio::time::timeout(limit, self.wait_process(id, exec_id)).await;
        Error::exec_timeout(id, limit)
    }

    async fn wait_process(&self, id: &str, exec_id: &str) -> Result<i32> {
        let mut tasks = TasksClient::new(self.channel().await?);
        let exited = tasks
            .wait(self.request(WaitRequest {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
            }))
            .await
            .map_err(|e| self.error("wait for", id, e))?;
        Ok(exited.into_inner().exit_status as i32)
    }
}

/// A blob in the content store that is not what berth expects.
fn corrupt_blob(digest: &str, message: String) -> Error {
    Error::Corrupt {
        what: "image blob".into(),
        path: PathBuf::from(digest),
        message,
        hint: "remove the image and import it again".into(),
    }
}

/// Empty required arguments are refused here, never sent to containerd.
fn require(what: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(what, "must not be empty"));
    }
    Ok(())
}

fn kind_of(operation: &'static str) -> Object {
    match operation {
        "prepare" | "mount" | "commit" | "stat" => Object::Snapshot,
        "read" => Object::Content,
        _ => Object::Container,
    }
}

/// Where `mounts` (one overlay, or a bind of a directory) can be read without mounting them.
fn already_mounted(mounts: &[SnapshotMount]) -> Option<PathBuf> {
    match mounts {
        [bind] if bind.kind == "bind" => Some(PathBuf::from(&bind.source)),
        [overlay] if overlay.kind == "overlay" => {
            let upper = overlay
                .options
                .iter()
                .find(|o| o.starts_with("upperdir="))?;
            berth_core::mounts::mounted_with(upper).ok().flatten()
        }
        _ => None,
    }
}

fn release_scratch(dir: &Path) -> Result<()> {
    berth_core::mounts::unmount_all(dir)?;
    std::fs::remove_dir(dir).map_err(|e| Error::io(format!("removing {}", dir.display()), e))
}

fn snapshot_mount(m: containerd_client::types::Mount) -> SnapshotMount {
    SnapshotMount {
        kind: m.r#type,
        source: m.source,
        options: m.options,
    }
}

/// Labels that make a snapshot a garbage-collection root. containerd collects snapshots no
/// image, container or lease refers to, which would take a version (or an active snapshot
/// between a container's delete and re-create) the next time anything is deleted; berth
/// removes what it creates itself.
fn gc_root() -> HashMap<String, String> {
    HashMap::from([("containerd.io/gc.root".to_string(), Utc::now().to_rfc3339())])
}

fn nanos() -> i64 {
    Utc::now().timestamp_nanos_opt().unwrap_or_default()
}

fn timestamp(t: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    let t = t?;
    DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32).filter(|d| d.timestamp() > 0)
}

fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// The client's first terminal size, if it sends one within [`FIRST_SIZE`].
async fn first_size(resizes: &mut Option<berth_core::Resizes>) -> Option<berth_core::TerminalSize> {
    let resizes = resizes.as_mut()?;
    tokio::time::timeout(FIRST_SIZE, resizes.recv())
        .await
        .ok()
        .flatten()
}

/// The container's runtime spec, as it was created.
fn runtime_spec_of(container: &Container) -> Option<oci_spec::runtime::Spec> {
    let any = container.spec.as_ref()?;
    serde_json::from_slice(&any.value).ok()
}

/// Whether the container's process is on a terminal, as its runtime spec says.
fn on_terminal(container: &Container) -> bool {
    runtime_spec_of(container)
        .and_then(|spec| spec.process().as_ref()?.terminal())
        .unwrap_or(false)
}

/// The stdin FIFO of the task that logs to `log`.
fn stdin_fifo(log: &Path) -> PathBuf {
    log.with_extension("stdin")
}

/// The cgroup a container's runtime spec gives it (`/berth/<id>` when it cannot be read).
fn container_cgroup(container: &Container, id: &str) -> PathBuf {
    runtime_spec_of(container)
        .and_then(|spec| spec.linux().as_ref()?.cgroups_path().clone())
        .unwrap_or_else(|| Path::new("/").join(CGROUP_PARENT).join(id))
}

#[async_trait]
impl ContainerBackend for ContainerdBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        // The task joins the network namespace the engine prepares (so networks, ports and DNS
        // are the engine's); restart policies are the engine's too (its restart watcher).
        Capabilities::networked_by_host().union(Capabilities::of(&[
            Capability::Pods,
            Capability::LogFilters,
            Capability::ExecStreams,
            Capability::CriLogs,
            Capability::UpdateLimits,
            Capability::Exec,
            Capability::ExecStdin,
            Capability::ExecEnv,
            Capability::ExecWorkdir,
            Capability::Attach,
            Capability::Terminal,
            Capability::Snapshots,
            Capability::Commit,
            Capability::Rollback,
            Capability::ImagePull,
            Capability::ImageImport,
            Capability::CopyFiles,
        ]))
    }

    /// Scratch mounts a killed `berth cp` left (nothing else of berth's lives outside
    /// containerd's own consistent state).
    async fn collect_garbage(
        &self,
        known: &std::collections::BTreeSet<String>,
        dry_run: bool,
    ) -> Result<Vec<String>> {
        // The attach sockets of tasks whose logger was killed (it removes its own).
        let mut removed =
            berth_core::attach::sweep_sockets(&self.store, "containerd", known, dry_run);
        let Ok(entries) = std::fs::read_dir(self.copy_scratch()) else {
            return Ok(removed);
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let owner = name.rsplit('.').nth(1).unwrap_or_default();
            if !owner.is_empty() && Path::new("/proc").join(owner).exists() {
                continue;
            }
            if !dry_run {
                release_scratch(&dir)?;
            }
            removed.push(format!("copy mount {}", dir.display()));
        }
        Ok(removed)
    }

    async fn stat_path(&self, id: &str, path: &str) -> Result<PathStat> {
        let path = path.to_string();
        self.with_files(id, move |root| root.stat(&path)).await
    }

    async fn copy_out(&self, id: &str, path: &str, tar: std::fs::File) -> Result<()> {
        let path = path.to_string();
        self.with_files(id, move |root| {
            root.pack(
                &path,
                &files::Top::of(&path),
                None,
                std::io::BufWriter::new(tar),
            )
        })
        .await
    }

    async fn copy_in(&self, id: &str, dir: &str, tar: std::fs::File) -> Result<()> {
        let dir = dir.to_string();
        let options = files::Unpack {
            trusted: true,
            ..files::Unpack::default()
        };
        self.with_files(id, move |root| {
            root.unpack(&dir, std::io::BufReader::new(tar), &options)
        })
        .await
    }

    async fn version(&self) -> Result<String> {
        let mut version = VersionClient::new(self.channel().await?);
        let answer = version
            .version(self.request(()))
            .await
            .map_err(|e| self.unreachable(e.message().to_string()))?
            .into_inner();
        Ok(answer.version)
    }

    async fn create(&self, id: &str, spec: &ContainerSpec) -> Result<ContainerInfo> {
        require("container id", id)?;
        require("image", &spec.image)?;
        let image = self.find_image(&spec.image).await?;
        let (config, ..) = self.image_config(&image).await?;
        let parent = chain_id(&config.diff_ids)
            .ok_or_else(|| Error::invalid(format!("image {}", image.name), "it has no layers"))?;

        let mut with_host_files = spec.clone();
        let resolv =
            host_files::resolv_conf(Path::new(host_files::RESOLVED_CONF), self.store.state_dir())?;
        let mut host_mounts = vec![Mount {
            source: resolv.display().to_string(),
            target: "/etc/resolv.conf".into(),
            readonly: true,
            owner: None,
        }];
        if let Some(localtime) = host_files::localtime() {
            host_mounts.push(Mount {
                source: localtime.display().to_string(),
                target: "/etc/localtime".into(),
                readonly: true,
                owner: None,
            });
        }
        // The user's own mounts at these targets win.
        host_mounts.retain(|m| !spec.mounts.iter().any(|u| u.target == m.target));
        with_host_files.mounts.splice(0..0, host_mounts);
        if let Ok(tz) = std::env::var("TZ") {
            with_host_files.env.entry("TZ".into()).or_insert(tz);
        }
        // The spec is built on the prepared snapshot, where the image's /etc/passwd is.
        let rootfs = self.prepare_rootfs(id, &parent).await?;
        let spec_json = match self.runtime_spec(id, &with_host_files, &config, rootfs) {
            Ok(json) => json,
            Err(e) => {
                let _ = self.discard_snapshot(id).await;
                return Err(e);
            }
        };
        let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
        labels.insert(NAME_LABEL.into(), spec.name.clone());
        if let Some(cgroup) = spec.pod_join.as_ref().and_then(|j| j.cgroup.as_ref()) {
            let json = serde_json::to_string(cgroup).expect("a pod cgroup serialises");
            labels.insert(POD_CGROUP_LABEL.into(), json);
        }
        if let Some(path) = &spec.log_path {
            labels.insert(CRI_LOG_LABEL.into(), path.display().to_string());
        }
        if spec.stdin_open {
            let kept = if spec.stdin_once { "once" } else { "open" };
            labels.insert(STDIN_LABEL.into(), kept.into());
        }
        labels.insert(berth_core::STORE_LABEL.into(), self.store.install_id()?);
        let container = Container {
            id: id.to_string(),
            labels,
            image: image.name.clone(),
            runtime: Some(Runtime {
                name: self.config.runtime.clone(),
                options: None,
            }),
            spec: Some(prost_types::Any {
                type_url: SPEC_TYPE.into(),
                value: spec_json,
            }),
            snapshotter: self.config.snapshotter.clone(),
            snapshot_key: id.to_string(),
            ..Default::default()
        };
        let mut containers = ContainersClient::new(self.channel().await?);
        let created = containers
            .create(self.request(CreateContainerRequest {
                container: Some(container),
            }))
            .await;
        let created = match created {
            Ok(created) => created.into_inner().container,
            Err(e) => {
                // Nothing half-created: the snapshot goes with the failed create.
                let _ = self.discard_snapshot(id).await;
                return Err(self.error("create", id, e));
            }
        };
        let created = created.ok_or_else(|| Error::not_found(berth_core::Object::Container, id))?;
        Ok(self.info_of(&created, None))
    }

    async fn start(&self, id: &str) -> Result<()> {
        // A task from an earlier run is gone once the process exited; a new run needs its own.
        if let Some(task) = self.task(id).await? {
            if Status::try_from(task.status) == Ok(Status::Running) {
                return Ok(());
            }
            self.delete_task(id).await?;
        }
        let container = self.container(id).await?;
        if let Some(json) = container.labels.get(POD_CGROUP_LABEL) {
            let cgroup: berth_core::PodCgroup = serde_json::from_str(json).map_err(|e| {
                Error::invalid(
                    format!("label {POD_CGROUP_LABEL} of container {id}"),
                    e.to_string(),
                )
            })?;
            berth_oci::cgroups::prepare_pod(CGROUP_PARENT, &cgroup)?;
        }
        let rootfs = self.rootfs_mounts(&container.snapshot_key).await?;
        let log = self.log_path(id);
        berth_core::store::create_dir_all(log.parent().expect("log paths have a parent"))?;
        let stdio = logger::uri(&self.logger_exe, &log);
        let tty = on_terminal(&container);
        // The shim gives a task with a logging binary a stdin only on a terminal.
        let stdin = (tty && container.labels.contains_key(STDIN_LABEL)).then(|| stdin_fifo(&log));
        if let Some(fifo) = &stdin {
            let _ = std::fs::remove_file(fifo);
            exec::mkfifo(fifo)?;
        }
        let io = logger::TaskIo {
            cri_log: container.labels.get(CRI_LOG_LABEL).map(PathBuf::from),
            attach_socket: Some(self.attach_socket(id)),
            stdin: stdin.clone(),
            stdin_once: container
                .labels
                .get(STDIN_LABEL)
                .is_some_and(|v| v == "once"),
            tty,
        };
        io.write(&log)?;
        let mut tasks = TasksClient::new(self.channel().await?);
        tasks
            .create(self.request(CreateTaskRequest {
                container_id: id.to_string(),
                rootfs,
                stdin: stdin.map(|f| f.display().to_string()).unwrap_or_default(),
                stdout: stdio.clone(),
                stderr: stdio,
                terminal: tty,
                ..Default::default()
            }))
            .await
            .map_err(|e| self.start_error(id, e))?;
        if let Err(e) = tasks
            .start(self.request(StartRequest {
                container_id: id.to_string(),
                ..Default::default()
            }))
            .await
        {
            let _ = self.delete_task(id).await;
            return Err(self.error("start", id, e));
        }
        Ok(())
    }

    async fn stop(&self, id: &str, options: &StopOptions) -> Result<()> {
        let running = self.task_running(id).await?;
        if !running {
            return Ok(());
        }
        self.signal(id, options.signal).await?;
        if tokio::time::timeout(options.timeout, self.wait_task(id))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if !options.force {
            return Err(Error::Timeout {
                operation: "stop",
                object: id.to_string(),
                seconds: options.timeout.as_secs(),
                hint: "it ignored the signal: `berth kill` ends it, or give it longer with `berth stop -t SECONDS`".into(),
            });
        }
        self.signal(id, libc::SIGKILL).await?;
        self.wait_task(id).await.map(drop)
    }

    async fn kill(&self, id: &str, signal: i32) -> Result<()> {
        require("container id", id)?;
        self.signal(id, signal).await
    }

    async fn remove(&self, id: &str, options: RemoveOptions) -> Result<()> {
        require("container id", id)?;
        if let Some(task) = self.task(id).await?
            && Status::try_from(task.status) == Ok(Status::Running)
        {
            if !options.force {
                return Err(Error::conflict(format!("container {id}"), "it is running")
                    .with_hint("stop it first, or remove it with --force"));
            }
            self.signal(id, libc::SIGKILL).await?;
            self.wait_task(id).await?;
        }
        self.delete_task(id).await?;
        let snapshot_key = match self.container(id).await {
            Ok(container) => {
                // runc took the container's cgroup; its pod's goes with the last app.
                if container.labels.contains_key(POD_CGROUP_LABEL) {
                    berth_oci::cgroups::remove(&container_cgroup(&container, id));
                }
                container.snapshot_key
            }
            // Gone behind berth's back counts as removed, as on Docker.
            Err(Error::NotFound { .. }) => id.to_string(),
            Err(e) => return Err(e),
        };
        let mut containers = ContainersClient::new(self.channel().await?);
        match containers
            .delete(self.request(DeleteContainerRequest { id: id.to_string() }))
            .await
        {
            Ok(_) => {}
            Err(e) if e.code() == Code::NotFound => {}
            Err(e) => return Err(self.error("remove", id, e)),
        }
        // The rootfs snapshot is a GC root from its prepare, so a kept one outlives the container.
        if !options.keep_snapshot {
            self.discard_snapshot(&snapshot_key).await?;
        }
        let log = self.log_path(id);
        let _ = std::fs::remove_file(logger::pid_file(&log));
        let _ = std::fs::remove_file(logger::io_file(&log));
        let _ = std::fs::remove_file(stdin_fifo(&log));
        let _ = std::fs::remove_file(log);
        Ok(())
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<ContainerInfo>> {
        let mut containers = ContainersClient::new(self.channel().await?);
        let listed = containers
            .list(self.request(ListContainersRequest::default()))
            .await
            .map_err(|e| self.error("list", "containers", e))?
            .into_inner()
            .containers;
        // This installation's containers only: others may share the namespace.
        let store = self.store.install_id()?;
        let mut infos = Vec::with_capacity(listed.len());
        for container in listed {
            if container.labels.get(berth_core::STORE_LABEL) != Some(&store) {
                continue;
            }
            let task = self.task(&container.id).await?;
            let info = self.info_of(&container, task.as_ref());
            if filter.matches(&info) {
                infos.push(info);
            }
        }
        Ok(infos)
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo> {
        let container = self.container(id).await?;
        let task = self.task(id).await?;
        Ok(self.info_of(&container, task.as_ref()))
    }

    async fn wait(&self, id: &str) -> Result<i32> {
        let container = self.container(id).await?;
        match self.task(id).await? {
            Some(_) => self.wait_task(id).await,
            None => Err(Error::conflict(
                format!("container {}", container.id),
                "it has not been started",
            )),
        }
    }

    async fn logs(&self, id: &str, options: LogOptions, sink: &mut dyn LogSink) -> Result<()> {
        self.container(id).await?;
        let log = self.log_path(id);
        let mut shaper = Shaper::new(options, sink);
        let running = self.task_running(id).await?;
        if !running {
            // The logging binary may still be writing what the task wrote last.
            logger::wait_drained(&log, Duration::from_secs(2)).await;
        }
        let mut offset = berth_core::logs::replay(&log, 0, &mut shaper)?;
        shaper
            .end_of_history()
            .map_err(|e| Error::io("writing container output", e))?;
        if !(options.follow && running) {
            return Ok(());
        }
        let exited = self.wait_task(id);
        tokio::pin!(exited);
        loop {
            offset = berth_core::logs::replay(&log, offset, &mut shaper)?;
            tokio::select! {
                _ = &mut exited => break,
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        // The rest, once the logging binary has drained the task's pipes.
        logger::wait_drained(&log, Duration::from_secs(2)).await;
        berth_core::logs::replay(&log, offset, &mut shaper)?;
        Ok(())
    }

    async fn exec(&self, id: &str, spec: &ExecSpec, io: ExecIo) -> Result<i32> {
        require("container id", id)?;
        if spec.command.is_empty() {
            return Err(Error::invalid("exec command", "must not be empty"));
        }
        let container = self.container(id).await?;
        self.require_running(id, "start it first with `berth start`")
            .await?;
        let stdin = std::io::stdin();
        let mut _raw = None;
        let mut io = match io {
            ExecIo::Streams(streams) => streams,
            ExecIo::Inherit => {
                // This terminal is the process's: raw, and its size followed.
                if spec.tty && spec.interactive {
                    _raw = berth_core::terminal::RawMode::enter(std::os::fd::AsFd::as_fd(&stdin));
                }
                let mut stdio = ExecStreams::stdio();
                stdio.resize = spec.tty.then(berth_core::terminal::follow_user_size);
                stdio
            }
        };
        let mut resizes = io.resize.take().filter(|_| spec.tty);
        // A terminal starts at its client's size.
        let first_size = first_size(&mut resizes).await;
        let container_spec = container.spec.map(|s| s.value).unwrap_or_default();
        let process = exec::process(&container_spec, spec, first_size)?;
        let process = serde_json::to_vec(&process)
            .map_err(|e| Error::invalid("exec process", e.to_string()))?;
        let exec_id = format!("exec-{}", nanos());
        let fifos = exec::Fifos::create(self.log_path(id).with_file_name(&exec_id))?;
        let streams = exec::Streams::open(&fifos, spec.tty)?;
        let fifo = |path: &Path| path.display().to_string();
        let mut tasks = TasksClient::new(self.channel().await?);
        tasks
            .exec(self.request(ExecProcessRequest {
                container_id: id.to_string(),
                exec_id: exec_id.clone(),
                stdin: fifo(&fifos.stdin),
                stdout: fifo(&fifos.stdout),
                // A terminal has one output.
                stderr: if spec.tty {
                    String::new()
                } else {
                    fifo(&fifos.stderr)
                },
                terminal: spec.tty,
                spec: Some(prost_types::Any {
                    type_url: PROCESS_TYPE.into(),
                    value: process,
                }),
            }))
            .await
            .map_err(|e| self.error("exec in", id, e))?;
        let started = tasks
            .start(self.request(StartRequest {
                container_id: id.to_string(),
                exec_id: exec_id.clone(),
            }))
            .await;
        let outcome = match started {
            Err(e) => Err(self.start_error(id, e)),
            Ok(_) => {
                let close_stdin = {
                    let mut tasks = tasks.clone();
                    let request = self.request(CloseIoRequest {
                        container_id: id.to_string(),
                        exec_id: exec_id.clone(),
                        stdin: true,
                    });
                    // The shim shuts a terminal (SIGHUP) at its stdin's end: there the end of
                    // the client's input is not the process's, which ends by itself.
                    let tty = spec.tty;
                    async move {
                        if !tty {
                            let _ = tasks.close_io(request).await;
                        }
                    }
                };
                let ran = async {
                    let (pumped, exited) = tokio::join!(
                        streams.pump(io, spec.interactive, close_stdin),
                        self.wait_process(id, &exec_id)
                    );
                    pumped.and(exited)
                };
                let ran = async {
                    tokio::select! {
                        ran = ran => ran,
                        () = self.follow_sizes(id, &exec_id, resizes) => unreachable!("sizes are followed forever"),
                    }
                };
                match spec.timeout {
                    None => ran.await,
                    Some(limit) => match tokio::time::timeout(limit, ran).await {
                        Ok(ran) => ran,
                        Err(_) => Err(self.exec_timed_out(&mut tasks, id, &exec_id, limit).await),
                    },
                }
            }
        };
        let _ = tasks
            .delete_process(self.request(DeleteProcessRequest {
                container_id: id.to_string(),
                exec_id,
            }))
            .await;
        outcome
    }

    /// Through the task's logger (see [`logger`]); window sizes go to the shim.
    async fn attach(&self, id: &str, mut io: ExecStreams, stdin: AttachStdin) -> Result<()> {
        require("container id", id)?;
        self.container(id).await?;
        self.require_running(id, "start it first with `berth start`")
            .await?;
        let mut resizes = io.resize.take();
        // The first size before any key, so what the user types sees the terminal's size.
        if let Some(size) = first_size(&mut resizes).await {
            self.resize(id, "", size).await;
        }
        let attached = berth_core::attach::attach(self.attach_socket(id), io, stdin);
        tokio::pin!(attached);
        tokio::select! {
            done = &mut attached => return done,
            () = self.follow_sizes(id, "", resizes) => unreachable!("sizes are followed forever"),
            _ = self.wait_task(id) => {}
        }
        // Without a terminal the shim keeps the output pipes open past the task's exit, so the
        // output never ends: once the logger has sent the last of it, what is in the socket is
        // read and the attachment ends.
        logger::wait_drained(&self.log_path(id), Duration::from_secs(2)).await;
        match tokio::time::timeout(LAST_OUTPUT, &mut attached).await {
            Ok(done) => done,
            Err(_) => Ok(()),
        }
    }

    /// The task's cgroup through the shim (runc update: only the limits given change), and the
    /// container's runtime spec, so the next start keeps them.
    async fn update_limits(&self, id: &str, limits: &Limits) -> Result<()> {
        require("container id", id)?;
        self.require_running(
            id,
            "limits are changed on a running container; start it first",
        )
        .await?;
        let swap = swap_limit_supported();
        let resources = berth_oci::spec::resources(limits, swap)?;
        let value = serde_json::to_vec(&resources)
            .map_err(|e| Error::invalid("resource limits", e.to_string()))?;
        let mut tasks = TasksClient::new(self.channel().await?);
        tasks
            .update(self.request(UpdateTaskRequest {
                container_id: id.to_string(),
                resources: Some(prost_types::Any {
                    type_url: RESOURCES_TYPE.into(),
                    value,
                }),
                ..Default::default()
            }))
            .await
            .map_err(|e| self.error("update", id, e))?;
        let mut container = self.container(id).await?;
        if let Some(any) = container.spec.as_mut() {
            let mut spec: oci_spec::runtime::Spec = serde_json::from_slice(&any.value)
                .map_err(|e| Error::invalid("the container's runtime spec", e.to_string()))?;
            berth_oci::spec::merge_resources(&mut spec, &resources);
            any.value = serde_json::to_vec(&spec)
                .map_err(|e| Error::invalid("the container's runtime spec", e.to_string()))?;
            let mut containers = ContainersClient::new(self.channel().await?);
            containers
                .update(self.request(UpdateContainerRequest {
                    container: Some(container),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["spec".into()],
                    }),
                }))
                .await
                .map_err(|e| self.error("update", id, e))?;
        }
        Ok(())
    }

    async fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        let mut snapshots = self.snapshots().await?;
        let mut stream = snapshots
            .list(self.request(snapshots::ListSnapshotsRequest {
                snapshotter: self.config.snapshotter.clone(),
                ..Default::default()
            }))
            .await
            .map_err(|e| self.error("list", "snapshots", e))?
            .into_inner();
        let mut infos = Vec::new();
        while let Some(page) = stream
            .message()
            .await
            .map_err(|e| self.error("list", "snapshots", e))?
        {
            for info in page.info {
                let kind = match snapshots::Kind::try_from(info.kind) {
                    Ok(snapshots::Kind::View) => SnapshotKind::View,
                    Ok(snapshots::Kind::Committed) => SnapshotKind::Committed,
                    _ => SnapshotKind::Active,
                };
                infos.push(SnapshotInfo {
                    parent: Some(info.parent).filter(|p| !p.is_empty()),
                    created: timestamp(info.created_at.as_ref()),
                    name: info.name,
                    kind,
                });
            }
        }
        infos.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
        Ok(infos)
    }

    async fn prepare_snapshot(
        &self,
        key: &str,
        parent: Option<&str>,
    ) -> Result<Vec<SnapshotMount>> {
        require("snapshot key", key)?;
        let mut snapshots = self.snapshots().await?;
        let prepared = snapshots
            .prepare(self.request(snapshots::PrepareSnapshotRequest {
                snapshotter: self.config.snapshotter.clone(),
                key: key.to_string(),
                parent: parent.unwrap_or_default().to_string(),
                labels: gc_root(),
            }))
            .await
            .map_err(|e| match e.code() {
                Code::NotFound => {
                    Error::not_found(berth_core::Object::Snapshot, parent.unwrap_or_default())
                }
                _ => self.error("prepare", key, e),
            })?;
        Ok(prepared
            .into_inner()
            .mounts
            .into_iter()
            .map(snapshot_mount)
            .collect())
    }

    async fn commit_snapshot(&self, name: &str, key: &str) -> Result<()> {
        require("snapshot name", name)?;
        require("snapshot key", key)?;
        let mut snapshots = self.snapshots().await?;
        snapshots
            .commit(self.request(snapshots::CommitSnapshotRequest {
                snapshotter: self.config.snapshotter.clone(),
                name: name.to_string(),
                key: key.to_string(),
                labels: gc_root(),
            }))
            .await
            .map_err(|e| match e.code() {
                Code::NotFound => Error::not_found(berth_core::Object::Snapshot, key),
                _ => self.error("commit", key, e),
            })?;
        Ok(())
    }

    async fn snapshot_mounts(&self, key: &str) -> Result<Vec<SnapshotMount>> {
        Ok(self
            .rootfs_mounts(key)
            .await?
            .into_iter()
            .map(snapshot_mount)
            .collect())
    }

    async fn remove_snapshot(&self, key: &str) -> Result<()> {
        require("snapshot key", key)?;
        let mut snapshots = self.snapshots().await?;
        snapshots
            .remove(self.request(snapshots::RemoveSnapshotRequest {
                snapshotter: self.config.snapshotter.clone(),
                key: key.to_string(),
            }))
            .await
            .map_err(|e| match e.code() {
                Code::NotFound => Error::not_found(berth_core::Object::Snapshot, key)
                    .with_hint("see `berth snapshot ls`"),
                Code::FailedPrecondition => {
                    Error::conflict(format!("snapshot {key}"), "other snapshots are built on it")
                        .with_hint("remove its children first (`berth snapshot ls` shows parents)")
                }
                _ => self.error("remove", key, e),
            })?;
        Ok(())
    }

    async fn commit(&self, id: &str, name: Option<&str>) -> Result<String> {
        let container = self.container(id).await?;
        let stamp = nanos();
        let version = name.map_or_else(|| format!("{id}-v{stamp}"), String::from);
        require("version name", &version)?;
        let was_running = self.park(id).await?;
        self.commit_snapshot(&version, &container.snapshot_key)
            .await?;
        let active = format!("{id}-active-{stamp}");
        self.prepare_snapshot(&active, Some(&version)).await?;
        self.recreate_on(container, &active).await?;
        if was_running {
            self.start(id).await?;
        }
        Ok(version)
    }

    async fn rollback(&self, id: &str, version: &str) -> Result<()> {
        require("version", version)?;
        let container = self.container(id).await?;
        let committed = self
            .list_snapshots()
            .await?
            .into_iter()
            .any(|s| s.name == version && s.kind == SnapshotKind::Committed);
        if !committed {
            return Err(Error::not_found(berth_core::Object::Version, version)
                .with_hint("versions are committed snapshots: see `berth snapshot ls`"));
        }
        let was_running = self.park(id).await?;
        let active = format!("{id}-active-{}", nanos());
        self.prepare_snapshot(&active, Some(version)).await?;
        let discarded = container.snapshot_key.clone();
        self.recreate_on(container, &active).await?;
        // The state being rolled back from is not a version: it goes.
        self.discard_snapshot(&discarded).await?;
        if was_running {
            self.start(id).await?;
        }
        Ok(())
    }

    async fn pull_image(
        &self,
        reference: &str,
        access: &berth_core::RegistryAccess,
        progress: &mut dyn PullProgress,
    ) -> Result<ImageInfo> {
        self.pull(reference, access, progress).await
    }

    async fn import_image(
        &self,
        source: &Path,
        name: Option<&str>,
        progress: &mut dyn PullProgress,
    ) -> Result<ImageInfo> {
        self.import_archive(source, name, progress).await
    }

    async fn list_images(&self) -> Result<Vec<ImageInfo>> {
        let mut infos: Vec<ImageInfo> = Vec::new();
        for image in self.image_names().await? {
            let info = self.image_info(&image).await?;
            match infos.iter_mut().find(|i| i.id == info.id) {
                Some(same) => same.names.extend(info.names),
                None => infos.push(info),
            }
        }
        Ok(infos)
    }

    async fn inspect_image(&self, reference: &str) -> Result<ImageInfo> {
        let image = self.find_image(reference).await?;
        self.image_info(&image).await
    }

    async fn remove_image(&self, reference: &str, force: bool) -> Result<()> {
        let image = self.find_image(reference).await?;
        if !force {
            let users = self
                .list(&ListFilter {
                    all: true,
                    ..Default::default()
                })
                .await?;
            if let Some(user) = users.iter().find(|c| c.image == image.name) {
                return Err(Error::conflict(
                    format!("image {}", image.name),
                    format!("container {} uses it", user.name),
                )
                .with_hint("remove the container first, or use --force"));
            }
        }
        let mut images = ImagesClient::new(self.channel().await?);
        images
            .delete(self.request(DeleteImageRequest {
                name: image.name.clone(),
                sync: true,
                ..Default::default()
            }))
            .await
            .map_err(|e| self.error("remove", &image.name, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(namespace: &str) -> Result<ContainerdBackend> {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s"), dir.path().join("r")).unwrap();
        let config = ContainerdBackendConfig {
            namespace: namespace.into(),
            socket: dir.path().join("no.sock"),
            ..Default::default()
        };
        ContainerdBackend::new("ctrd", &config, store, "/usr/bin/berth".into())
    }

    #[test]
    fn namespaces_follow_containerds_rule() {
        for ok in ["berth", "k8s.io", "a-b_c.d", "x1"] {
            assert!(backend(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a..b", "a b", "a/b", "ünï"] {
            assert!(backend(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn empty_arguments_never_reach_containerd() {
        // The socket does not exist: an error other than Invalid would mean a connect attempt.
        let backend = backend("berth").unwrap();
        let spec = ContainerSpec::default();
        for e in [
            backend.create("", &spec).await.unwrap_err(),
            backend.create("abc", &spec).await.unwrap_err(),
            backend.inspect("").await.unwrap_err(),
            backend
                .remove("", RemoveOptions::forced())
                .await
                .unwrap_err(),
            backend.kill("", 9).await.unwrap_err(),
            backend.inspect_image("").await.unwrap_err(),
        ] {
            assert_eq!(e.kind(), berth_core::ErrorKind::Invalid, "{e}");
        }
        let down = backend.version().await.unwrap_err();
        assert_eq!(down.kind(), berth_core::ErrorKind::Unavailable, "{down}");
        assert!(down.to_string().contains("no.sock"), "{down}");
    }
}
