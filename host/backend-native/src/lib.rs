//! berth's embedded, daemonless backend: youki's `libcontainer`, an overlayfs rootfs and a
//! content-addressed image store.
//!
//! There is no daemon: `create` writes an OCI bundle and the backend's records into the state
//! store; `start` re-executes the `berth` binary as a per-container supervisor
//! ([`reexec`]) that runs the container and outlives the CLI; every other operation reads the
//! records and asks the supervisor's lock whether it is still alive. Two `berth` processes acting
//! on one container serialise on its operation lock.

pub mod exec;
mod gc;
pub mod images;
pub mod layers;
pub mod records;
pub mod reexec;
pub mod rootfs;
pub mod snapshots;
pub mod stats;
pub mod supervisor;
mod terminal;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use berth_core::config::NativeBackendConfig;
use berth_core::logs::Shaper;
use berth_core::{
    AttachStdin, Capabilities, Capability, ContainerBackend, ContainerInfo, ContainerSpec,
    ContainerState, ContainerStats, Error, ErrorKind, ExecIo, ExecSpec, ExecStreams, ImageInfo,
    IoContext, Limits, ListFilter, Listed, LockMode, LogOptions, LogSink, PathStat, PullProgress,
    RemoveOptions, Result, SnapshotInfo, SnapshotMount, StopOptions, Store, crash,
};
use berth_oci::{LayerDirs, files, spec};
use chrono::{DateTime, Utc};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub use images::{ImageRecord, ImageStore};
use records::{ContainerRecord, Layout, Phase, StateRecord};
use snapshots::SnapshotStore;

/// What `info` reports as the version.
pub const VERSION: &str = "libcontainer 0.7";

/// The native backend: one per `[backends.<name>]` table of `type = "native"`.
#[derive(Debug, Clone)]
pub struct NativeBackend {
    name: String,
    store: Store,
    images: ImageStore,
    supervisor_exe: PathBuf,
    cgroup_parent: String,
}

impl NativeBackend {
    /// `supervisor_exe` is the `berth` binary (whose `main` calls [`reexec::dispatch`]).
    pub fn new(
        name: &str,
        config: &NativeBackendConfig,
        store: Store,
        supervisor_exe: PathBuf,
    ) -> Result<NativeBackend> {
        let images = ImageStore::open(&store)?;
        Ok(NativeBackend {
            name: name.to_string(),
            store,
            images,
            supervisor_exe,
            cgroup_parent: config.cgroup_parent.clone(),
        })
    }

    fn image_info(&self, record: ImageRecord) -> ImageInfo {
        ImageInfo {
            id: record.id,
            names: record.names,
            size: record.size,
            created: Some(record.created),
            backend: self.name.clone(),
            os: record.config.os,
            architecture: record.config.architecture,
            variant: record.config.variant,
            env: record.config.env,
            user: record.config.user.filter(|u| !u.is_empty()),
        }
    }

    /// The image store containers are created from.
    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    fn record(&self, id: &str) -> Result<ContainerRecord> {
        records::read_record(&self.store, id)?.ok_or_else(|| {
            Error::not_found(berth_core::Object::Container, id)
                .with_hint("see `berth ps -a` for existing containers")
        })
    }

    fn fail(&self, operation: &'static str, id: &str, message: impl std::fmt::Display) -> Error {
        Error::backend(&self.name, operation, format!("container {id}"), message)
    }

    /// The recorded state refined by supervisor liveness, plus the detail to report.
    fn observe(&self, id: &str) -> Result<(StateRecord, ContainerState, Option<String>)> {
        let state = records::read_state(&self.store, id)?.unwrap_or_else(StateRecord::created);
        self.judge(id, state)
    }

    /// What the recorded `state` means now: the supervisor's lock says whether a running or
    /// starting container still has one.
    fn judge(
        &self,
        id: &str,
        state: StateRecord,
    ) -> Result<(StateRecord, ContainerState, Option<String>)> {
        Ok(match state.phase {
            // A live supervisor that has not recorded "running" yet is still starting it (the
            // `start` that asked may have been killed; the supervisor carries on).
            Phase::Created if records::try_supervisor_lock(&self.store, id)?.is_none() => {
                (state, ContainerState::Starting, None)
            }
            Phase::Created => {
                let detail = state.detail.clone();
                (state, ContainerState::Created, detail)
            }
            Phase::Exited => {
                let detail = state.detail.clone();
                (state, ContainerState::Stopped, detail)
            }
            Phase::Running => match records::try_supervisor_lock(&self.store, id)? {
                None => (state, ContainerState::Running, None),
                Some(_guard) => {
                    // The supervisor may have recorded the exit just before releasing the lock.
                    let state = records::read_state(&self.store, id)?.unwrap_or(state);
                    match state.phase {
                        Phase::Running => {
                            let detail = if self.orphans(id).is_empty() {
                                "the supervisor is gone (killed or crashed); the exit code is unknown"
                            } else {
                                "the supervisor is gone (killed or crashed) but the container's \
                                 processes still run: `berth stop` ends them"
                            };
                            (state, ContainerState::Dead, Some(detail.into()))
                        }
                        Phase::Exited => {
                            let detail = state.detail.clone();
                            (state, ContainerState::Stopped, detail)
                        }
                        Phase::Created => (state, ContainerState::Created, None),
                    }
                }
            },
        })
    }

    /// The recorded state of container `id`, which must be running; `needs` says what for.
    fn running(&self, id: &str, needs: &str) -> Result<StateRecord> {
        self.record(id)?;
        let (state, observed, _) = self.observe(id)?;
        if observed != ContainerState::Running {
            return Err(
                Error::conflict(format!("container {id}"), format!("it is {observed}"))
                    .with_hint(format!("{needs}; start it first")),
            );
        }
        Ok(state)
    }

    fn info_for(&self, record: &ContainerRecord) -> Result<ContainerInfo> {
        let observed = self.observe(&record.id)?;
        Ok(self.info_of(&record.id, &record.spec, record.created, observed))
    }

    fn info_of(
        &self,
        id: &str,
        spec: &ContainerSpec,
        created: DateTime<Utc>,
        (state, observed, detail): (StateRecord, ContainerState, Option<String>),
    ) -> ContainerInfo {
        ContainerInfo {
            id: id.to_string(),
            name: spec.name.clone(),
            image: spec.image.clone(),
            state: observed,
            pid: state.pid.filter(|_| observed == ContainerState::Running),
            exit_code: state
                .exit_code
                .filter(|_| observed == ContainerState::Stopped),
            created,
            started: state.started,
            finished: state.finished,
            labels: spec.labels.clone(),
            backend: self.name.clone(),
            status_detail: detail,
            ip_address: None,
            networks: Vec::new(),
            ports: Vec::new(),
            limits: Some(spec.limits.clone()),
            restart_count: 0,
        }
    }

    fn create_blocking(&self, id: &str, spec: &ContainerSpec) -> Result<ContainerInfo> {
        let _op = records::op_lock(&self.store, id)?;
        if records::read_record(&self.store, id)?.is_some() {
            return Err(Error::AlreadyExists {
                kind: berth_core::Object::Container,
                name: id.to_string(),
                hint: "use a new id".into(),
            });
        }
        // Shared: image removal (exclusive) cannot slip between the lookup and the record.
        let _images = self.images.lock(LockMode::Shared)?;
        let image = self.images.resolve(&spec.image)?;
        let lower_dirs: Vec<PathBuf> = image
            .layers
            .iter()
            .rev()
            .map(|d| self.images.layer_dir(d))
            .collect();
        let oci = spec::build_spec(&spec::SpecInput {
            id,
            spec,
            image: &image.config,
            cgroup_parent: &self.cgroup_parent,
            files: &LayerDirs(lower_dirs.clone()),
            swap_limit: spec::swap_limit_supported(),
        })?;
        let layout = Layout::new(&self.store, id);
        let result = (|| {
            for dir in [layout.rootfs(), layout.upper(), layout.work()] {
                berth_core::store::create_dir_all(&dir)?;
            }
            let json = serde_json::to_vec_pretty(&oci).expect("OCI specs serialise");
            berth_core::store::atomic_write(&layout.bundle().join("config.json"), &json, 0o640)?;
            let record = ContainerRecord {
                id: id.to_string(),
                spec: spec.clone(),
                image_id: image.id.clone(),
                lower_dirs,
                base: None,
                created: Utc::now(),
                rebasing: None,
            };
            crash::point("native.create.bundled");
            records::write_state(&self.store, id, &StateRecord::created())?;
            self.store.write(
                berth_core::Durability::Persistent,
                records::CONTAINERS,
                id,
                "config",
                &record,
            )?;
            self.info_for(&record)
        })();
        if result.is_err() {
            let _ = self.store.remove(records::CONTAINERS, id);
        }
        result
    }

    fn start_blocking(&self, id: &str) -> Result<()> {
        let _op = records::op_lock(&self.store, id)?;
        self.recovered(id)?;
        match self.observe(id)?.1 {
            ContainerState::Running => return Ok(()),
            ContainerState::Starting => {
                return Err(Error::conflict(
                    format!("container {id}"),
                    "its supervisor is still starting it (the start that asked was killed)",
                )
                .with_hint("wait a moment, then see `berth ps -a`"));
            }
            // Never quietly kill what runs unwatched to start anew.
            _ if !self.orphans(id).is_empty() => {
                return Err(Error::conflict(
                    format!("container {id}"),
                    "its supervisor died and its processes still run",
                )
                .with_hint("stop it first (`berth stop`), then start it again"));
            }
            _ => {}
        }
        if let Some(pod) = self.record(id)?.spec.pod_join.and_then(|join| join.cgroup) {
            berth_oci::cgroups::prepare_pod(&self.cgroup_parent, &pod)?;
        }
        let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .context(|| "creating the supervisor status pipe".into())?;
        // The status pipe is the supervisor's stdout, and it makes its own session: with
        // nothing to run between fork and exec, std spawns it with posix_spawn (vfork), so
        // starting a container does not copy this process's page tables (wasmtime's among them).
        let mut command = std::process::Command::new(&self.supervisor_exe);
        command
            .arg(reexec::SUPERVISE)
            .arg(self.store.state_dir())
            .arg(self.store.run_dir())
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::from(write_end))
            .stderr(Stdio::null());
        let spawned = command.spawn();
        // Our copy of the pipe's write end goes with the command, so a supervisor that dies
        // before reporting is seen as end of file.
        drop(command);
        let mut child = spawned.map_err(|e| {
            self.fail(
                "start",
                id,
                format!(
                    "cannot run the supervisor {}: {e}",
                    self.supervisor_exe.display()
                ),
            )
        })?;
        // The supervisor forks at once; its first half exits and is reaped here.
        let _ = child.wait();
        let mut line = String::new();
        BufReader::new(std::fs::File::from(read_end))
            .take(64 * 1024)
            .read_line(&mut line)
            .context(|| "reading the supervisor's status".into())?;
        let report = serde_json::from_str(line.trim_end()).unwrap_or_else(|_| {
            supervisor::StartReport::Failed {
                message: "the supervisor exited without reporting a status".into(),
            }
        });
        let (message, not_found) = match report {
            supervisor::StartReport::Started { .. } => return Ok(()),
            supervisor::StartReport::CommandNotFound { message } => (message, true),
            supervisor::StartReport::Failed { message } => (message, false),
        };
        let mut state = records::read_state(&self.store, id)?.unwrap_or_else(StateRecord::created);
        if state.phase != Phase::Exited {
            state.phase = Phase::Created;
        }
        state.detail = Some(format!("start failed: {message}"));
        records::write_state(&self.store, id, &state)?;
        if not_found {
            return Err(Error::CommandNotFound {
                container: id.to_string(),
                message,
            });
        }
        Err(self.fail("start", id, message))
    }

    /// Waits until the supervisor has recorded the container's exit; `false` on timeout.
    fn wait_exit(&self, pid: Option<u32>, id: &str, timeout: Option<Duration>) -> Result<bool> {
        if let (Some(pid), Some(timeout)) = (pid, timeout)
            && !wait_pid_exit(pid, timeout)
        {
            return Ok(false);
        }
        drop(records::supervisor_lock(&self.store, id)?);
        Ok(true)
    }

    fn stop_blocking(&self, id: &str, options: &StopOptions) -> Result<()> {
        let _op = records::op_lock(&self.store, id)?;
        self.record(id)?;
        let (state, observed, _) = self.observe(id)?;
        if observed == ContainerState::Dead {
            return self.stop_orphans(id, state, options);
        }
        if observed != ContainerState::Running {
            return Ok(());
        }
        let pid = state.pid;
        self.signal(id, pid, options.signal)?;
        if self.wait_exit(pid, id, Some(options.timeout))? {
            return Ok(());
        }
        if !options.force {
            return Err(Error::Timeout {
                operation: "stop",
                object: format!("container {id}"),
                seconds: options.timeout.as_secs(),
                hint: "stop it with force, or `berth kill` it".into(),
            });
        }
        self.signal(id, pid, libc::SIGKILL)?;
        self.wait_exit(pid, id, None)?;
        Ok(())
    }

    /// SIGKILLs whatever the container's cgroup holds and waits (a moment: SIGKILL cannot be
    /// ignored) until it is empty.
    fn kill_orphans(&self, id: &str) {
        berth_oci::cgroups::kill_all(&self.cgroup_of(id), Duration::from_secs(10));
    }

    /// The processes of a container whose supervisor died: what its cgroup still holds.
    fn orphans(&self, id: &str) -> Vec<i32> {
        berth_oci::cgroups::processes(&self.cgroup_of(id))
    }

    /// The container's cgroup below each hierarchy's root, as its record says (under its pod's
    /// for an app).
    fn cgroup_of(&self, id: &str) -> PathBuf {
        match records::read_record(&self.store, id) {
            Ok(Some(record)) => spec::cgroup_path(&self.cgroup_parent, &record.spec, id),
            _ => Path::new(&self.cgroup_parent).join(id),
        }
    }

    /// `stop` of a container whose supervisor died: its processes (found through its cgroup)
    /// get the signal, then SIGKILL after the timeout if forced; then what the supervisor would
    /// have cleaned goes (libcontainer's state, the mount, the cgroup) and the exit is recorded.
    fn stop_orphans(&self, id: &str, state: StateRecord, options: &StopOptions) -> Result<()> {
        let signal_all = |signal: i32| -> Result<()> {
            for pid in self.orphans(id) {
                self.signal(id, Some(pid as u32), signal)?;
            }
            Ok(())
        };
        signal_all(options.signal)?;
        let deadline = std::time::Instant::now() + options.timeout;
        while !self.orphans(id).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !self.orphans(id).is_empty() {
            if !options.force {
                return Err(Error::Timeout {
                    operation: "stop",
                    object: format!("container {id}"),
                    seconds: options.timeout.as_secs(),
                    hint: "its processes ignored the signal: `berth kill` ends them".into(),
                });
            }
            signal_all(libc::SIGKILL)?;
            while !self.orphans(id).is_empty() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.orphans_ended(id, state, "stopped")
    }

    /// What the supervisor would have done when the last process of a container it no longer
    /// watches ended (`how`: "stopped", "killed"): the runtime's leftovers go and the exit is
    /// recorded.
    fn orphans_ended(&self, id: &str, mut state: StateRecord, how: &str) -> Result<()> {
        self.release_runtime(id)?;
        state.phase = Phase::Exited;
        state.finished = Some(Utc::now());
        state.detail = Some(format!(
            "{how} after its supervisor died; the exit code is unknown"
        ));
        records::write_state(&self.store, id, &state)
    }

    /// `kill`: the signal goes to the container's process, or, when its supervisor died, to
    /// every process its cgroup holds; if they all end (within a moment) the container is
    /// recorded as exited, as `stop` would.
    fn kill_blocking(&self, id: &str, signal: i32) -> Result<()> {
        self.record(id)?;
        if self.observe(id)?.1 != ContainerState::Dead || self.orphans(id).is_empty() {
            // Not under the operation lock: a `kill` must reach a container a `stop` waits on.
            let state = self.running(id, "only a running container can be signalled")?;
            return self.signal(id, state.pid, signal);
        }
        // Nobody watches it: like `stop`, this records its end, so one at a time.
        let _op = records::op_lock(&self.store, id)?;
        let (state, observed, _) = self.observe(id)?;
        if observed != ContainerState::Dead {
            return Ok(()); // a stop ended it meanwhile
        }
        for pid in self.orphans(id) {
            self.signal(id, Some(pid as u32), signal)?;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while !self.orphans(id).is_empty() {
            if std::time::Instant::now() >= deadline {
                return Ok(()); // they took the signal and live on
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.orphans_ended(id, state, "killed")
    }

    /// Runs `f` on the container's files: a running container's as its processes see them
    /// (volumes included), a stopped one's rootfs mounted for the while (a mount a killed
    /// `berth` leaves is the one the next start uses, and remove takes down).
    fn with_files<T>(&self, id: &str, f: impl FnOnce(&files::Root) -> Result<T>) -> Result<T> {
        let _op = records::op_lock(&self.store, id)?;
        let record = records::read_record(&self.store, id)?
            .ok_or_else(|| Error::not_found(berth_core::Object::Container, id))?;
        if let Some(pid) = self.info_for(&record)?.pid {
            return f(&files::Root::open(Path::new(&format!("/proc/{pid}/root")))?);
        }
        let layout = Layout::new(&self.store, id);
        let mounted_here = !rootfs::is_mounted(&layout.rootfs());
        layout.mount_rootfs(&record.lower_dirs)?;
        crash::point("native.copy.mounted");
        let result = files::Root::open(&layout.rootfs()).and_then(|root| f(&root));
        if mounted_here {
            rootfs::unmount(&layout.rootfs())?;
        }
        result
    }

    /// Removes what a container's run leaves in the host once its processes are gone:
    /// libcontainer's state (killing any process it still knows), the rootfs mount and the
    /// cgroup. What the supervisor does at exit, for when it cannot.
    fn release_runtime(&self, id: &str) -> Result<()> {
        let lc_dir = records::libcontainer_root(&self.store).join(id);
        if lc_dir.exists() {
            if let Ok(mut container) = libcontainer::container::Container::load(lc_dir.clone())
                && let Err(e) = container.delete(true)
            {
                tracing::warn!(id, error = %supervisor::chain(&e), "libcontainer delete failed");
            }
            let _ = std::fs::remove_dir_all(&lc_dir);
        }
        let layout = Layout::new(&self.store, id);
        rootfs::unmount(&layout.rootfs())?;
        // Anything else a killed process left mounted below the container's directory.
        berth_core::mounts::unmount_under(&layout.dir)?;
        if rootfs::is_mounted(&layout.rootfs()) {
            return Err(self.fail("remove", id, "its root filesystem is still mounted"));
        }
        berth_oci::cgroups::remove(&self.cgroup_of(id));
        Ok(())
    }

    fn signal(&self, id: &str, pid: Option<u32>, signal: i32) -> Result<()> {
        let signal = Signal::try_from(signal)
            .map_err(|_| Error::invalid(format!("signal {signal}"), "not a signal number"))?;
        let Some(pid) = pid.filter(|p| *p > 0) else {
            return Err(self.fail("signal", id, "no process id recorded"));
        };
        match kill(Pid::from_raw(pid as i32), signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(e) => Err(self.fail("signal", id, e)),
        }
    }

    fn remove_blocking(&self, id: &str, options: RemoveOptions) -> Result<()> {
        let _op = records::op_lock(&self.store, id)?;
        let force = options.force;
        // A record that does not parse does not stop a forced removal: what is there goes.
        let record = match self.recovered(id) {
            Err(e) if force && !options.keep_snapshot && e.kind() == ErrorKind::Corrupt => None,
            other => Some(other?),
        };
        let state = records::read_state(&self.store, id).ok().flatten();
        let observed = match &state {
            Some(_) => self.observe(id)?.1,
            None => ContainerState::Dead,
        };
        let live = match observed {
            ContainerState::Running => true,
            ContainerState::Dead => !self.orphans(id).is_empty(),
            _ => false,
        };
        if live {
            if !force {
                return Err(Error::conflict(format!("container {id}"), "it is running")
                    .with_hint("stop it first (`berth stop`), or remove it with --force"));
            }
            if observed == ContainerState::Running {
                let pid = state.as_ref().and_then(|s| s.pid);
                self.signal(id, pid, libc::SIGKILL)?;
                self.wait_exit(pid, id, None)?;
            }
            self.kill_orphans(id);
        }
        self.release_runtime(id)?;
        if options.keep_snapshot
            && let Some(record) = &record
        {
            let layout = Layout::new(&self.store, id);
            self.snapshots()
                .commit_dir(id, &self.base_of(record)?, &layout.upper())?;
        }
        crash::point("native.remove.released");
        self.store.remove(records::CONTAINERS, id)
    }

    fn snapshots(&self) -> SnapshotStore {
        SnapshotStore::open(&self.store, &self.images)
    }

    /// Whether `id` was running; if so, it is stopped (as `berth stop` would).
    async fn park(&self, id: &str) -> Result<bool> {
        let running = self.inspect(id).await?.state == ContainerState::Running;
        if running {
            self.stop(id, &StopOptions::default()).await?;
        }
        Ok(running)
    }

    /// Puts stopped container `id` on committed snapshot `version`. With `commit`, its upper
    /// dir becomes that version first; without (a rollback), its changes are dropped.
    ///
    /// Crash-safe by an intent: the record says what is being done (and which directory the
    /// upper dir is, by inode) before the first step, and every step can be redone or found
    /// done, so a `berth` killed at any instant leaves the container's files either in its
    /// upper dir or in the committed version it then runs on, never lost between the two.
    fn rebase_blocking(&self, id: &str, version: &str, commit: bool) -> Result<()> {
        let _op = records::op_lock(&self.store, id)?;
        let mut record = self.recovered(id)?;
        if self.observe(id)?.1 == ContainerState::Running {
            return Err(Error::conflict(format!("container {id}"), "it is running")
                .with_hint("stop it first"));
        }
        let layout = Layout::new(&self.store, id);
        rootfs::unmount(&layout.rootfs())?;
        let snapshots = self.snapshots();
        // Checked before the intent, so a refused rebase leaves no intent behind.
        if commit {
            check_key_free(&snapshots, version)?;
            self.base_of(&record)?;
        } else {
            snapshots.lower_dirs(version)?;
        }
        record.rebasing = Some(records::Rebase {
            version: version.to_string(),
            commit,
            upper: inode(&layout.upper()),
        });
        self.write_record(&record)?;
        crash::point("native.rebase.intended");
        self.finish_rebase(&mut record)
    }

    /// Finishes the rebase `record` is in the middle of; each step is found done or done.
    fn finish_rebase(&self, record: &mut ContainerRecord) -> Result<()> {
        let Some(rebase) = record.rebasing.clone() else {
            return Ok(());
        };
        let id = record.id.clone();
        let layout = Layout::new(&self.store, &id);
        let snapshots = self.snapshots();
        let is_upper = |dir: &Path| rebase.upper.is_some() && inode(dir) == rebase.upper;
        if rebase.commit {
            let committed = snapshots
                .layer_of(&rebase.version)?
                .is_some_and(|fs| is_upper(&fs));
            if !committed {
                // Killed between moving the upper dir into staging and naming the snapshot:
                // it goes back, and is committed again.
                for (staging, fs) in snapshots.staged(&rebase.version) {
                    if is_upper(&fs) && !layout.upper().exists() {
                        std::fs::rename(&fs, layout.upper()).context(|| {
                            format!("recovering container {id}'s files from {}", fs.display())
                        })?;
                        let _ = std::fs::remove_dir_all(&staging);
                    }
                }
                berth_core::store::create_dir_all(&layout.upper())?;
                snapshots.commit_dir(&rebase.version, &self.base_of(record)?, &layout.upper())?;
            }
            crash::point("native.rebase.committed");
        } else if layout.upper().exists() {
            std::fs::remove_dir_all(layout.upper())
                .context(|| format!("dropping the changes of container {id}"))?;
        }
        let _ = std::fs::remove_dir_all(layout.work());
        for dir in [layout.upper(), layout.work()] {
            berth_core::store::create_dir_all(&dir)?;
        }
        record.lower_dirs = snapshots.lower_dirs(&rebase.version)?;
        record.base = Some(rebase.version);
        record.rebasing = None;
        self.write_record(record)
    }

    /// The record, with any rebase a killed `berth` left half done finished first. Needs the
    /// container's operation lock.
    fn recovered(&self, id: &str) -> Result<ContainerRecord> {
        let mut record = self.record(id)?;
        if record.rebasing.is_some() {
            tracing::info!(id, "finishing a commit or rollback that did not finish");
            self.finish_rebase(&mut record)?;
        }
        Ok(record)
    }

    fn write_record(&self, record: &ContainerRecord) -> Result<()> {
        self.store.write(
            berth_core::Durability::Persistent,
            records::CONTAINERS,
            &record.id,
            "config",
            record,
        )
    }

    /// The committed snapshot container `record` runs on: its last version, else its image's
    /// top layer.
    fn base_of(&self, record: &ContainerRecord) -> Result<String> {
        if let Some(base) = &record.base {
            return Ok(base.clone());
        }
        let image = self.images.resolve(&record.image_id)?;
        let diff_ids: Vec<String> = image.layers.iter().map(|d| format!("sha256:{d}")).collect();
        berth_oci::digest::chain_id(&diff_ids)
            .ok_or_else(|| self.fail("commit", &record.id, "its image has no layers"))
    }

    /// The container standing on layer `dir`, if any.
    fn container_on(&self, dir: &Path) -> Result<Option<String>> {
        for id in self
            .store
            .list(berth_core::Durability::Persistent, records::CONTAINERS)?
        {
            if let Some(record) = records::read_record(&self.store, &id)?
                && record.lower_dirs.iter().any(|d| d == dir)
            {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    fn logs_once(&self, id: &str, offset: u64, shaper: &mut Shaper) -> Result<u64> {
        berth_core::logs::replay(&Layout::new(&self.store, id).log(), offset, shaper)
    }
}

/// Waits up to `timeout` for `pid` to exit (its pidfd becomes readable); `true` if it did.
/// A directory's (device, inode): its identity across renames.
/// Where container `id`'s supervisor serves attachments.
pub(crate) fn attach_socket(store: &Store, id: &str) -> PathBuf {
    berth_core::attach::socket_path(store, "native", id)
}

fn inode(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(dir)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Refuses a version name that is already a snapshot, before anything is moved.
fn check_key_free(snapshots: &SnapshotStore, key: &str) -> Result<()> {
    if snapshots.layer_of(key)?.is_some() {
        return Err(Error::AlreadyExists {
            kind: berth_core::Object::Snapshot,
            name: key.to_string(),
            hint: "choose another version name".into(),
        });
    }
    Ok(())
}

fn wait_pid_exit(pid: u32, timeout: Duration) -> bool {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if raw < 0 {
        // Already gone (ESRCH), or no pidfds: the supervisor lock then does the waiting.
        return true;
    }
    // SAFETY: `raw` was just returned by pidfd_open and is owned here alone.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw as i32) };
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let mut fds = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&fd),
            nix::poll::PollFlags::POLLIN,
        )];
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let wait = nix::poll::PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(nix::poll::PollTimeout::MAX);
        match nix::poll::poll(&mut fds, wait) {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return true,
        }
    }
}

/// Runs blocking store and process work off the async runtime.
/// [`blocking`] for work that reports progress: its events reach `progress` as they happen.
async fn reporting<T: Send + 'static>(
    progress: &mut dyn PullProgress,
    f: impl FnOnce(&mut dyn FnMut(berth_core::PullEvent)) -> Result<T> + Send + 'static,
) -> Result<T> {
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let work = blocking(move || {
        f(&mut |event| {
            let _ = events.send(event);
        })
    });
    tokio::pin!(work);
    loop {
        tokio::select! {
            Some(event) = received.recv() => progress.event(&event),
            done = &mut work => {
                while let Ok(event) = received.try_recv() {
                    progress.event(&event);
                }
                return done;
            }
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        Error::io(
            "a native backend task",
            std::io::Error::other(e.to_string()),
        )
    })?
}

#[async_trait]
impl ContainerBackend for NativeBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        // Networking is the engine's (the container joins the namespace it prepares), and so
        // are restart policies (its restart watcher).
        Capabilities::networked_by_host().union(Capabilities::of(&[
            Capability::Exec,
            Capability::ExecStdin,
            Capability::ExecEnv,
            Capability::ExecWorkdir,
            Capability::Stats,
            Capability::Snapshots,
            Capability::Commit,
            Capability::Rollback,
            Capability::ImagePull,
            Capability::ImageImport,
            Capability::ImportRootfs,
            Capability::Pods,
            Capability::LogFilters,
            Capability::ExecStreams,
            Capability::CriLogs,
            Capability::UpdateLimits,
            Capability::Attach,
            Capability::StdinPipe,
            Capability::Terminal,
            Capability::CopyFiles,
        ]))
    }

    async fn collect_garbage(
        &self,
        known: &std::collections::BTreeSet<String>,
        dry_run: bool,
    ) -> Result<Vec<String>> {
        let (this, known) = (self.clone(), known.clone());
        blocking(move || this.collect_garbage_blocking(&known, dry_run)).await
    }

    async fn version(&self) -> Result<String> {
        let overlay = rootfs::overlay_supported();
        let cgroups = Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
            || Path::new("/sys/fs/cgroup/memory").is_dir();
        let problem = match (overlay, cgroups) {
            (true, true) => return Ok(VERSION.into()),
            (false, _) => "the kernel has no overlayfs (modprobe overlay)",
            (_, false) => "no cgroup hierarchy is mounted under /sys/fs/cgroup",
        };
        Err(Error::Unavailable {
            service: format!("backend {:?}", self.name),
            endpoint: "this kernel".into(),
            reason: problem.into(),
            hint: String::new(),
        })
    }

    async fn create(&self, id: &str, spec: &ContainerSpec) -> Result<ContainerInfo> {
        let (this, id, spec) = (self.clone(), id.to_string(), spec.clone());
        blocking(move || this.create_blocking(&id, &spec)).await
    }

    async fn start(&self, id: &str) -> Result<()> {
        let (this, id) = (self.clone(), id.to_string());
        blocking(move || this.start_blocking(&id)).await
    }

    async fn stop(&self, id: &str, options: &StopOptions) -> Result<()> {
        let (this, id, options) = (self.clone(), id.to_string(), options.clone());
        blocking(move || this.stop_blocking(&id, &options)).await
    }

    async fn kill(&self, id: &str, signal: i32) -> Result<()> {
        let (this, id) = (self.clone(), id.to_string());
        blocking(move || this.kill_blocking(&id, signal)).await
    }

    /// With `keep_snapshot`, the upper dir stays as committed snapshot `<id>` on what the
    /// container ran on.
    async fn remove(&self, id: &str, options: RemoveOptions) -> Result<()> {
        let (this, id) = (self.clone(), id.to_string());
        blocking(move || this.remove_blocking(&id, options)).await
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<ContainerInfo>> {
        let (this, filter) = (self.clone(), filter.clone());
        blocking(move || {
            let mut infos = Vec::new();
            for id in this
                .store
                .list(berth_core::Durability::Persistent, records::CONTAINERS)?
            {
                // A directory without a record is a create or remove in progress.
                if let Some(record) = records::read_record(&this.store, &id)? {
                    let info = this.info_for(&record)?;
                    if filter.matches(&info) {
                        infos.push(info);
                    }
                }
            }
            infos.sort_by_key(|info| std::cmp::Reverse(info.created));
            Ok(infos)
        })
        .await
    }

    /// Inline: a few small reads and a lock that is only tried, where a blocking task's
    /// handoff would cost more than the work (`ps` asks once per container).
    async fn inspect(&self, id: &str) -> Result<ContainerInfo> {
        self.info_for(&self.record(id)?)
    }

    /// Each container's state file alone (with its lock), read in parallel: the record is read
    /// only when there is no state, to tell a container created just now (or by a create that
    /// was killed) from none at all. Inline, as `inspect` is.
    async fn statuses(&self, containers: &[Listed<'_>]) -> Vec<Result<ContainerInfo>> {
        berth_core::store::read_parallel(containers, |c| {
            let state = match records::read_state(&self.store, c.id)? {
                Some(state) => state,
                None => {
                    self.record(c.id)?;
                    StateRecord::created()
                }
            };
            Ok(self.info_of(c.id, c.spec, c.created, self.judge(c.id, state)?))
        })
    }

    async fn wait(&self, id: &str) -> Result<i32> {
        let (this, id) = (self.clone(), id.to_string());
        blocking(move || {
            this.record(&id)?;
            drop(records::supervisor_lock(&this.store, &id)?);
            let (state, observed, detail) = this.observe(&id)?;
            match observed {
                ContainerState::Stopped | ContainerState::Restarting => {
                    Ok(state.exit_code.unwrap_or(255))
                }
                ContainerState::Created => Err(Error::conflict(
                    format!("container {id}"),
                    "it has not been started",
                )
                .with_hint(detail.unwrap_or_else(|| "start it first".into()))),
                // Restarted between the lock and the read: wait for that run instead.
                ContainerState::Running | ContainerState::Starting => {
                    drop(records::supervisor_lock(&this.store, &id)?);
                    Ok(records::read_state(&this.store, &id)?
                        .and_then(|s| s.exit_code)
                        .unwrap_or(255))
                }
                ContainerState::Dead => Err(this.fail(
                    "wait for",
                    &id,
                    detail.unwrap_or_else(|| "the container is dead".into()),
                )),
            }
        })
        .await
    }

    async fn logs(&self, id: &str, options: LogOptions, sink: &mut dyn LogSink) -> Result<()> {
        self.record(id)?;
        let mut shaper = Shaper::new(options, sink);
        let mut offset = self.logs_once(id, 0, &mut shaper)?;
        shaper
            .end_of_history()
            .context(|| "writing container logs".to_string())?;
        if !options.follow {
            return Ok(());
        }
        // The supervisor holds its lock until the container has exited and its output is
        // flushed: waiting on the lock ends the follow the moment that happens, while the
        // timer streams output in between.
        let (this, owned_id) = (self.clone(), id.to_string());
        let exited = blocking(move || records::supervisor_lock(&this.store, &owned_id).map(drop));
        tokio::pin!(exited);
        loop {
            tokio::select! {
                result = &mut exited => {
                    result?;
                    self.logs_once(id, offset, &mut shaper)?;
                    return Ok(());
                }
                _ = tokio::time::sleep(Duration::from_millis(50)) => {
                    offset = self.logs_once(id, offset, &mut shaper)?;
                }
            }
        }
    }

    async fn attach(&self, id: &str, io: ExecStreams, stdin: AttachStdin) -> Result<()> {
        self.running(id, "attach needs a running container")?;
        berth_core::attach::attach(attach_socket(&self.store, id), io, stdin).await
    }

    async fn update_limits(&self, id: &str, limits: &Limits) -> Result<()> {
        let _op = records::op_lock(&self.store, id)?;
        self.running(id, "limits are changed on a running container's cgroup")?;
        berth_oci::cgroups::update(&self.cgroup_of(id), limits)?;
        // Kept for the next start, as docker update keeps them: in the bundle it starts from,
        // and in the record.
        let config = Layout::new(&self.store, id).bundle().join("config.json");
        let mut bundle = oci_spec::runtime::Spec::load(&config)
            .map_err(|e| self.fail("update", id, format!("reading {}: {e}", config.display())))?;
        let resources = spec::resources(limits, spec::swap_limit_supported())?;
        spec::merge_resources(&mut bundle, &resources);
        let json = serde_json::to_vec_pretty(&bundle).expect("runtime specs serialise");
        berth_core::store::atomic_write(&config, &json, 0o640)?;
        let mut record = self.record(id)?;
        record.spec.limits = record.spec.limits.updated_by(limits);
        self.write_record(&record)
    }

    async fn stat_path(&self, id: &str, path: &str) -> Result<PathStat> {
        let (this, id, path) = (self.clone(), id.to_string(), path.to_string());
        blocking(move || this.with_files(&id, |root| root.stat(&path))).await
    }

    async fn copy_out(&self, id: &str, path: &str, tar: std::fs::File) -> Result<()> {
        let (this, id, path) = (self.clone(), id.to_string(), path.to_string());
        blocking(move || {
            let top = files::Top::of(&path);
            this.with_files(&id, |root| {
                root.pack(&path, &top, None, std::io::BufWriter::new(tar))
            })
        })
        .await
    }

    async fn copy_in(&self, id: &str, dir: &str, tar: std::fs::File) -> Result<()> {
        let (this, id, dir) = (self.clone(), id.to_string(), dir.to_string());
        let options = files::Unpack {
            trusted: true,
            ..files::Unpack::default()
        };
        blocking(move || {
            this.with_files(&id, |root| {
                root.unpack(&dir, std::io::BufReader::new(tar), &options)
            })
        })
        .await
    }

    async fn stats(&self, id: &str) -> Result<ContainerStats> {
        let state = self.running(id, "stats are read from a running container's cgroup")?;
        let cgroup = self.cgroup_of(id);
        Ok(stats::read(
            cgroup.strip_prefix("/").unwrap_or(&cgroup),
            state.pid,
        ))
    }

    /// Fetched by `berth-registry` into an OCI layout under the run dir, then imported from it
    /// like any layout.
    async fn pull_image(
        &self,
        reference: &str,
        access: &berth_core::RegistryAccess,
        progress: &mut dyn PullProgress,
    ) -> Result<ImageInfo> {
        let image = berth_registry::pull(reference, access, progress).await?;
        let this = self.clone();
        reporting(progress, move |report| {
            let pulls = this.store.run_dir().join("native-pull");
            berth_core::store::create_dir_all(&pulls)?;
            let layout =
                tempfile::tempdir_in(&pulls).context(|| "creating a pull directory".to_string())?;
            image.write_oci_layout(layout.path())?;
            let record = this
                .images
                .import_archive(layout.path(), Some(&image.name), report)?;
            Ok(this.image_info(record))
        })
        .await
    }

    async fn import_image(
        &self,
        source: &Path,
        name: Option<&str>,
        progress: &mut dyn PullProgress,
    ) -> Result<ImageInfo> {
        let (this, source, name) = (self.clone(), source.to_owned(), name.map(str::to_owned));
        reporting(progress, move |report| {
            let record = this
                .images
                .import_archive(&source, name.as_deref(), report)?;
            Ok(this.image_info(record))
        })
        .await
    }

    async fn import_rootfs(&self, dir: &Path, name: &str) -> Result<ImageInfo> {
        let (this, dir, name) = (self.clone(), dir.to_owned(), name.to_owned());
        blocking(move || {
            let record = this.images.import_rootfs(&dir, &name)?;
            Ok(this.image_info(record))
        })
        .await
    }

    async fn list_images(&self) -> Result<Vec<ImageInfo>> {
        let this = self.clone();
        blocking(move || {
            let records = this.images.list()?;
            Ok(records
                .into_iter()
                .filter(|r| !r.names.is_empty())
                .map(|r| this.image_info(r))
                .collect())
        })
        .await
    }

    async fn inspect_image(&self, reference: &str) -> Result<ImageInfo> {
        let (this, reference) = (self.clone(), reference.to_string());
        blocking(move || Ok(this.image_info(this.images.resolve(&reference)?))).await
    }

    async fn remove_image(&self, reference: &str, force: bool) -> Result<()> {
        let (this, reference) = (self.clone(), reference.to_string());
        blocking(move || {
            // Snapshots standing on an image's layers keep them after the image goes.
            let kept = snapshots::image_layers_in_use(&this.store)?;
            this.images.remove(&reference, force, &kept).map(drop)
        })
        .await
    }

    async fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        let this = self.clone();
        blocking(move || this.snapshots().list()).await
    }

    async fn prepare_snapshot(
        &self,
        key: &str,
        parent: Option<&str>,
    ) -> Result<Vec<SnapshotMount>> {
        let (this, key, parent) = (self.clone(), key.to_string(), parent.map(String::from));
        blocking(move || this.snapshots().prepare(&key, parent.as_deref())).await
    }

    async fn commit_snapshot(&self, name: &str, key: &str) -> Result<()> {
        let (this, name, key) = (self.clone(), name.to_string(), key.to_string());
        blocking(move || this.snapshots().commit(&name, &key)).await
    }

    async fn snapshot_mounts(&self, key: &str) -> Result<Vec<SnapshotMount>> {
        let (this, key) = (self.clone(), key.to_string());
        blocking(move || this.snapshots().mounts(&key)).await
    }

    async fn remove_snapshot(&self, key: &str) -> Result<()> {
        let (this, key) = (self.clone(), key.to_string());
        blocking(move || this.snapshots().remove(&key, |dir| this.container_on(dir))).await
    }

    /// The container's upper dir becomes committed snapshot `name` (default `<id>-v<nanos>`)
    /// on what it ran on, and it carries on from there with an empty one.
    async fn commit(&self, id: &str, name: Option<&str>) -> Result<String> {
        self.record(id)?;
        let version = name.map_or_else(
            || format!("{id}-v{}", Utc::now().timestamp_nanos_opt().unwrap_or(0)),
            String::from,
        );
        let was_running = self.park(id).await?;
        let (this, id_owned, v) = (self.clone(), id.to_string(), version.clone());
        blocking(move || this.rebase_blocking(&id_owned, &v, true)).await?;
        if was_running {
            self.start(id).await?;
        }
        Ok(version)
    }

    async fn rollback(&self, id: &str, version: &str) -> Result<()> {
        self.record(id)?;
        self.snapshots().lower_dirs(version)?;
        let was_running = self.park(id).await?;
        let (this, id_owned, v) = (self.clone(), id.to_string(), version.to_string());
        blocking(move || this.rebase_blocking(&id_owned, &v, false)).await?;
        if was_running {
            self.start(id).await?;
        }
        Ok(())
    }

    async fn exec(&self, id: &str, spec: &ExecSpec, io: ExecIo) -> Result<i32> {
        self.running(id, "exec needs a running container")?;
        if spec.command.is_empty() {
            return Err(Error::invalid("exec", "no command given"));
        }
        let request = exec::ExecRequest {
            command: spec.command.clone(),
            env: spec.env.clone().into_iter().collect(),
            cwd: spec.working_dir.clone(),
            tty: spec.tty,
            framed: spec.tty && matches!(io, ExecIo::Streams(_)),
        };
        let mut helper = tokio::process::Command::new(&self.supervisor_exe);
        helper
            .arg(reexec::EXEC)
            .arg(self.store.state_dir())
            .arg(self.store.run_dir())
            .arg(id)
            .arg(serde_json::to_string(&request).expect("exec requests serialise"));
        let piped = matches!(io, ExecIo::Streams(_));
        let stdio = |inherit: bool| {
            if piped {
                Stdio::piped()
            } else if inherit {
                Stdio::inherit()
            } else {
                Stdio::null()
            }
        };
        helper
            // A terminal's size reaches a framed exec through its stdin.
            .stdin(if spec.interactive || request.framed {
                stdio(true)
            } else {
                Stdio::null()
            })
            .stdout(stdio(true))
            .stderr(stdio(true));
        let mut child = helper.spawn().map_err(|e| {
            self.fail(
                "exec in",
                id,
                format!("cannot run {}: {e}", self.supervisor_exe.display()),
            )
        })?;
        let pumped = match io {
            ExecIo::Inherit => None,
            ExecIo::Streams(mut streams) => {
                let interactive = spec.interactive || request.framed;
                if request.framed {
                    // Input frames: stdin (when the exec reads it) and window sizes, in one.
                    let stdin = std::mem::replace(&mut streams.stdin, Box::new(tokio::io::empty()));
                    let stdin = spec.interactive.then_some(stdin);
                    let (mut to_helper, from_caller) = tokio::io::duplex(64 * 1024);
                    let mut resize = streams.resize.take();
                    tokio::spawn(async move {
                        let _ = berth_core::attach::send_input(stdin, &mut resize, &mut to_helper)
                            .await;
                        // The end of stdin closes the process's; sizes keep coming.
                        let _ =
                            berth_core::attach::send_input(None, &mut resize, &mut to_helper).await;
                    });
                    streams.stdin = Box::new(from_caller);
                }
                let to_stdin = match child.stdin.take() {
                    Some(stdin) => Box::new(stdin) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
                    None => Box::new(tokio::io::sink()),
                };
                let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
                let (Some(stdout), Some(stderr)) = (stdout, stderr) else {
                    unreachable!("both outputs are piped");
                };
                Some(tokio::spawn(streams.pump(
                    interactive,
                    to_stdin,
                    stdout,
                    stderr,
                    async {},
                )))
            }
        };
        let abort = pumped.as_ref().map(|p| p.abort_handle());
        let ran = async {
            let status = child.wait().await;
            if let Some(pumped) = pumped {
                let _ = pumped.await;
            }
            status
        };
        let status = match spec.timeout {
            None => ran.await,
            Some(limit) => match tokio::time::timeout(limit, ran).await {
                Ok(status) => status,
                Err(_) => {
                    end_exec_helper(&mut child).await;
                    if let Some(abort) = &abort {
                        abort.abort();
                    }
                    return Err(Error::exec_timeout(id, limit));
                }
            },
        }
        .map_err(|e| self.fail("exec in", id, format!("waiting for the exec: {e}")))?;
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    }
}

/// Ends an exec past its timeout: SIGTERM tells the helper to kill what it runs (again until it
/// has, since a signal just before its wait is not seen), SIGKILL if it does not within 5 s.
async fn end_exec_helper(child: &mut tokio::process::Child) {
    let Some(pid) = child.id() else { return };
    for _ in 0..25 {
        // SAFETY: a signal to our own child, which `wait` has not yet reaped.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        if tokio::time::timeout(std::time::Duration::from_millis(200), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}
