//! Restart policies for backends that do not keep them (native, containerd): docker's rules
//! ([`berth_core::restart`]) kept by a watcher per container, berth re-executed as
//! `berth __restart-watch ID`. It is started with the container and lives while the policy
//! may still restart it: it waits for the exit, waits out the back-off and starts the
//! container again through the pipeline (networks, hooks), as `berth start` would. No daemon.
//!
//! A user's `stop` or `kill` is recorded first, so the watcher leaves the container stopped;
//! a user's `start` clears it and the restart count. One watcher per container (it holds a
//! lock for its life); a watcher that was killed is started again by `berth gc`, and
//! `berth gc --restart` (at boot) starts what the policy says should run again.

use std::sync::Arc;
use std::time::Duration;

use berth_core::restart::{self, Exit, Restarts};
use berth_core::{ContainerState, Durability, LockMode, RestartPolicy, Result};
use chrono::Utc;

use crate::records::{CONTAINERS, Phase};
use crate::{ContainerRecord, Engine};

/// The hidden command a watcher runs as.
pub const WATCH: &str = "__restart-watch";
/// Lock kind a watcher holds for its whole life.
pub(crate) const WATCHERS: &str = "restart-watchers";
/// Lock kind taken around a change of the restarts item (not the container's own lock,
/// which a stop holds while it waits: a kill must not wait behind it).
pub(crate) const RESTARTS_LOCK: &str = "restarts";
/// The item beside the container's record.
const ITEM: &str = "restarts";

impl Engine {
    /// What berth remembers of the restarts of `record`'s container.
    pub fn restarts(&self, record: &ContainerRecord) -> Restarts {
        if record.spec.restart == RestartPolicy::No {
            return Restarts::default();
        }
        self.store
            .read(Durability::Persistent, CONTAINERS, &record.id, ITEM)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Changes the restarts item of a container whose restarts the engine keeps.
    fn update_restarts(
        &self,
        record: &ContainerRecord,
        change: impl FnOnce(&mut Restarts),
    ) -> Result<()> {
        if !self.keeps_restarts(record) {
            return Ok(());
        }
        let _lock = self
            .store
            .lock(RESTARTS_LOCK, &record.id, LockMode::Exclusive)?;
        let mut restarts = self.restarts(record);
        change(&mut restarts);
        self.store.write(
            Durability::Persistent,
            CONTAINERS,
            &record.id,
            ITEM,
            &restarts,
        )
    }

    fn keeps_restarts(&self, record: &ContainerRecord) -> bool {
        record.spec.restart != RestartPolicy::No && self.backends.engine_restarts(&record.backend)
    }

    /// A user asked to stop or kill the container: its policy does not restart it.
    pub(crate) fn stop_requested(&self, record: &ContainerRecord) -> Result<()> {
        self.update_restarts(record, |r| {
            r.stop_requested = true;
            r.pending = None;
        })
    }

    /// A user started the container: its policy applies afresh.
    pub(crate) fn started_by_user(&self, record: &ContainerRecord) -> Result<()> {
        self.update_restarts(record, |r| *r = Restarts::default())
    }

    /// Whether a watcher keeps the container's policy now.
    pub(crate) fn watched(&self, id: &str) -> bool {
        matches!(
            self.store.try_lock(WATCHERS, id, LockMode::Exclusive),
            Ok(None)
        )
    }

    /// The state a user sees (a stopped container a watcher is about to restart is
    /// restarting) and the restart count.
    pub(crate) fn restart_view(
        &self,
        record: &ContainerRecord,
        state: ContainerState,
    ) -> (ContainerState, u32) {
        if !self.keeps_restarts(record) {
            return (state, 0);
        }
        let restarts = self.restarts(record);
        let restarting = state == ContainerState::Stopped
            && restarts.pending.is_some()
            && !restarts.stop_requested
            && self.watched(&record.id);
        let state = if restarting {
            ContainerState::Restarting
        } else {
            state
        };
        (state, restarts.count)
    }

    /// Starts a watcher for the container when the engine keeps its policy and none watches
    /// it (`boot`: it decides as at boot, see [`restart::at_boot`]).
    pub(crate) fn watch_restarts(&self, record: &ContainerRecord, boot: bool) -> Result<()> {
        if !self.keeps_restarts(record) || self.watched(&record.id) {
            return Ok(());
        }
        let mut args = Vec::new();
        if std::path::Path::new(&self.config.source).is_file() {
            args.extend(["--config".to_string(), self.config.source.clone()]);
        }
        args.extend([WATCH.to_string(), record.id.clone()]);
        if boot {
            args.push("--boot".into());
        }
        crate::pods::watch::detached(
            &args,
            &format!("the restart watcher of container {}", record.name),
        )
    }

    /// When the policy restarts a container that is not running (`info`): after how long,
    /// or `None` to leave it (`boot`: as at boot, see [`restart::at_boot`]).
    pub(crate) fn restart_due(
        &self,
        record: &ContainerRecord,
        info: &berth_core::ContainerInfo,
        boot: bool,
    ) -> Option<Duration> {
        if info.state == ContainerState::Created || info.state.is_running() {
            return None; // never started, or not exited
        }
        let restarts = self.restarts(record);
        let (policy, max) = (record.spec.restart, record.spec.restart_max_retries);
        if boot {
            return restart::at_boot(policy, max, &restarts, info.exit_code)
                .then_some(Duration::ZERO);
        }
        let ran_for = match (info.started, info.finished) {
            (Some(started), Some(finished)) => (finished - started).to_std().ok(),
            _ => None,
        };
        let exit = Exit {
            // A dead container's exit was never seen.
            code: info
                .exit_code
                .filter(|_| info.state != ContainerState::Dead),
            ran_for: ran_for.unwrap_or_default(),
        };
        restart::on_exit(policy, max, &restarts, exit)
    }

    /// The watcher itself (`berth __restart-watch ID [--boot]`): returns when the policy
    /// leaves the container stopped, the container is gone, or another watcher has it.
    pub async fn keep_restarting(self: &Arc<Self>, id: &str, boot: bool) -> Result<()> {
        let Some(_watching) = self.store.try_lock(WATCHERS, id, LockMode::Exclusive)? else {
            return Ok(());
        };
        let mut boot = boot;
        loop {
            let record = match self.records.reread(id) {
                Ok(record) if record.phase == Phase::Created => record,
                _ => return Ok(()),
            };
            let backend = self.backend(&record.backend)?;
            let mut info = backend.inspect(id).await?;
            if info.state.is_running() {
                boot = false;
                // A wait ends in an error too when the supervisor died: then the container
                // is dead, which its policy judges as a failure.
                let waited = self.wait(&record).await;
                info = backend.inspect(id).await?;
                if info.state.is_running() {
                    waited?;
                    continue; // a user started it again meanwhile
                }
            }
            let Some(delay) = self.restart_due(&record, &info, boot) else {
                return Ok(());
            };
            self.update_restarts(&record, |r| {
                // A start at boot makes the policy apply afresh, as a user's start does.
                if boot {
                    *r = Restarts::default();
                }
                r.pending = Some(Utc::now());
                if !delay.is_zero() {
                    r.delay_ms = delay.as_millis() as u64;
                }
            })?;
            boot = false;
            tokio::time::sleep(delay).await;
            // A user may have stopped, started or removed it meanwhile: look again.
            let record = match self.records.reread(id) {
                Ok(record) if record.phase == Phase::Created => record,
                _ => return Ok(()),
            };
            let mut due = false;
            self.update_restarts(&record, |r| {
                due = r.pending.take().is_some() && !r.stop_requested;
                if due {
                    r.count += 1;
                }
            })?;
            if !due {
                continue;
            }
            berth_core::crash::point("restart.counted");
            if let Err(e) = self.start_as(&record, false).await {
                tracing::warn!(id, error = %e, "the restart policy could not start the container");
                return Err(e);
            }
        }
    }

    /// gc's part: every container whose policy the engine keeps and that no watcher has is
    /// watched again if it runs (its watcher was killed), and restarted if its policy says so
    /// (`boot`: as at boot). One line per container in `done`.
    pub(crate) async fn collect_restarts(
        self: &Arc<Self>,
        boot: bool,
        dry_run: bool,
        report: &mut crate::GcReport,
    ) -> Result<()> {
        for record in self.records.all()? {
            if record.phase != Phase::Created || !self.keeps_restarts(&record) {
                continue;
            }
            if self.watched(&record.id) {
                continue;
            }
            let Ok(info) = self.backend(&record.backend)?.inspect(&record.id).await else {
                continue;
            };
            let what = if info.state.is_running() {
                format!("the restart watcher of container {}", record.name)
            } else if self.restart_due(&record, &info, boot).is_some() {
                format!(
                    "container {} (restart policy {})",
                    record.name,
                    record.spec.restart.as_str()
                )
            } else {
                continue;
            };
            let result = if dry_run {
                Ok(())
            } else {
                self.watch_restarts(&record, boot)
            };
            match result {
                Ok(()) => report.restarted.push(what),
                Err(e) => report.failed.push(format!("{what}: {e}")),
            }
        }
        if !dry_run {
            let known: std::collections::BTreeSet<String> =
                self.records.all()?.into_iter().map(|r| r.id).collect();
            for kind in [WATCHERS, RESTARTS_LOCK] {
                self.store
                    .remove_stale_locks(kind, |id| known.contains(id))?;
            }
        }
        Ok(())
    }
}
