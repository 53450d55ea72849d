//! `berth gc`: finishes or undoes what killed `berth` processes left, so every object is either
//! fully there or fully gone.
//!
//! - a claim whose create died: what it may have made on its backend goes, then the claim;
//! - a removal that died: finished;
//! - a record whose backend no longer has the container (the backend answers "not found";
//!   an unreachable backend is not asked to decide): removed;
//! - `run --rm` containers whose `run` died: removed once they have exited;
//! - with `--exited`, containers that exited longer ago than the grace period: removed, as
//!   rkt's gc does;
//! - containers a backend holds for this installation that berth has no record of: removed;
//! - running containers' networks: CNI CHECK, a mismatch reported;
//! - network attachments, host-port claims and namespaces of containers that are gone (DEL
//!   runs for each network ADD may have run for);
//! - each backend's own leftovers (see `ContainerBackend::collect_garbage`), temp files of
//!   atomic writes that died, and lock files of containers that are gone.
//!
//! Everything busy (a lock held by a live process) is skipped: gc never races an operation.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use berth_core::{ContainerState, ErrorKind, ListFilter, RemoveOptions, Result};
use chrono::Utc;
use serde::Serialize;

use crate::records::Phase;
use crate::{Engine, short};

/// What `berth gc` may remove beyond what crashes left.
#[derive(Debug, Clone, Copy, Default)]
pub struct GcOptions {
    /// List what would be done, change nothing.
    pub dry_run: bool,
    /// Also remove containers that exited longer ago than this.
    pub exited_older_than: Option<Duration>,
    /// At boot: start what the restart policies say should run again (`always` even if a
    /// user stopped it, see `berth_core::restart::at_boot`).
    pub restart: bool,
}

/// What gc did (or, dry, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    /// One line per object removed or operation finished.
    pub removed: Vec<String>,
    /// What could not be cleaned, and why; gc goes on past each.
    pub failed: Vec<String>,
    /// Containers (re)started, or watched again, for their restart policies.
    pub restarted: Vec<String>,
}

impl GcReport {
    fn outcome(&mut self, what: String, result: Result<()>) {
        match result {
            Ok(()) => self.removed.push(what),
            Err(e) => self.failed.push(format!("{what}: {e}")),
        }
    }
}

impl Engine {
    pub async fn gc(self: &Arc<Self>, options: GcOptions) -> Result<GcReport> {
        let mut report = GcReport {
            dry_run: options.dry_run,
            ..GcReport::default()
        };
        self.collect_records(options, &mut report).await?;
        for (what, result) in self.collect_pods(options.dry_run).await? {
            report.outcome(what, result);
        }
        self.collect_orphans(options, &mut report).await?;
        self.collect_restarts(options.restart, options.dry_run, &mut report)
            .await?;

        let known: BTreeSet<String> = self.records.all()?.into_iter().map(|r| r.id).collect();
        for name in self.backends.names() {
            match self
                .backend(name)?
                .collect_garbage(&known, options.dry_run)
                .await
            {
                Ok(done) => report.removed.extend(done),
                Err(e) => report.failed.push(format!("backend {name:?}: {e}")),
            }
        }
        // Running containers' networks are CHECKed: what no longer matches is reported (a
        // restart re-attaches it), never torn down under a running container. A container
        // that is stopped or was never started gives its addresses back (a stop or start
        // killed half-way leaves them), unless an operation holds it.
        // Only networked backends are asked, and only about their own containers.
        for record in self.records.all()? {
            if record.phase != Phase::Created || !self.networked(&record.backend) {
                continue;
            }
            let state = match self.backend(&record.backend)?.inspect(&record.id).await {
                Ok(info) => info.state,
                Err(_) => continue,
            };
            match state {
                ContainerState::Running => {
                    if let Err(e) = self.networks.check(&record.id).await {
                        report
                            .failed
                            .push(format!("the networks of container {}: {e}", record.name));
                    }
                }
                ContainerState::Stopped | ContainerState::Created
                    if self.networks.is_attached(&record.id) =>
                {
                    let Some(_lock) = self.records.try_lock(&record.id)? else {
                        continue;
                    };
                    let what = format!(
                        "the network attachment of {} container {} ({})",
                        state,
                        record.name,
                        short(&record.id)
                    );
                    let result = if options.dry_run {
                        Ok(())
                    } else {
                        self.networks.detach(&record.id).await
                    };
                    report.outcome(what, result);
                }
                _ => {}
            }
        }
        // A pod's network is held under the pod's id.
        let pods: BTreeSet<String> = self.pod_ids().into_iter().collect();
        let live = |id: &str| known.contains(id) || pods.contains(id);
        match self.networks.collect_garbage(&live, options.dry_run).await {
            Ok(done) => report.removed.extend(done),
            Err(e) => report.failed.push(format!("networks: {e}")),
        }
        for (what, done) in [
            ("volumes", self.volumes().collect_garbage(options.dry_run)),
            ("packages", self.packages().collect_garbage(options.dry_run)),
        ] {
            match done {
                Ok(done) => report.removed.extend(done),
                Err(e) => report.failed.push(format!("{what}: {e}")),
            }
        }
        let temp = self.store.stale_temp_files()?;
        for file in temp {
            let what = format!("temp file {}", file.display());
            let result = if options.dry_run {
                Ok(())
            } else {
                std::fs::remove_file(&file)
                    .map_err(|e| berth_core::Error::io(format!("removing {}", file.display()), e))
            };
            report.outcome(what, result);
        }
        if !options.dry_run {
            self.store
                .remove_stale_locks(crate::records::CONTAINERS, |id| {
                    known.contains(id) || id == crate::records::NAMES_LOCK
                })?;
        }
        Ok(report)
    }

    /// Berth's own records: dead claims and removals, auto-remove and (optionally) exited
    /// containers, records whose container is gone.
    async fn collect_records(
        self: &Arc<Self>,
        options: GcOptions,
        report: &mut GcReport,
    ) -> Result<()> {
        for record in self.records.all()? {
            let label = format!("container {} ({})", record.name, short(&record.id));
            match record.phase {
                Phase::Unreadable => continue, // listed by `ps`, removed by `rm -f`
                Phase::Creating | Phase::Removing => {
                    let Some(_lock) = self.records.try_lock(&record.id)? else {
                        continue; // its create or removal is still running
                    };
                    let what = match record.phase {
                        Phase::Creating => format!("{label}: the create that did not finish"),
                        _ => format!("{label}: the removal that did not finish"),
                    };
                    let result = if options.dry_run {
                        Ok(())
                    } else {
                        match self.remove_leftover(&record).await {
                            Ok(()) => self.records.remove(&record),
                            Err(e) => Err(e),
                        }
                    };
                    report.outcome(what, result);
                    continue;
                }
                Phase::Created => {}
            }
            let Ok(backend) = self.backend(&record.backend) else {
                continue;
            };
            let info = match backend.inspect(&record.id).await {
                Ok(info) => info,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    let what = format!("{label}: its backend no longer has it");
                    let result = if options.dry_run {
                        Ok(())
                    } else {
                        self.records.remove(&record)
                    };
                    report.outcome(what, result);
                    continue;
                }
                // Unreachable or failing: not gc's to judge.
                Err(_) => continue,
            };
            let exited = matches!(
                info.state,
                ContainerState::Stopped | ContainerState::Created
            );
            let expired = options.exited_older_than.is_some_and(|grace| {
                info.state == ContainerState::Stopped
                    && info.finished.is_some_and(|at| {
                        Utc::now()
                            .signed_duration_since(at)
                            .to_std()
                            .unwrap_or_default()
                            > grace
                    })
            });
            let why = if record.auto_remove && exited {
                "run --rm, and it has exited"
            } else if expired {
                "exited longer ago than the grace period"
            } else {
                continue;
            };
            let result = if options.dry_run {
                Ok(())
            } else {
                self.remove(&record, RemoveOptions::forced()).await
            };
            report.outcome(format!("{label}: {why}"), result);
        }
        Ok(())
    }

    /// Containers a backend holds for this installation with no berth record.
    async fn collect_orphans(&self, options: GcOptions, report: &mut GcReport) -> Result<()> {
        let known: BTreeSet<String> = self.records.all()?.into_iter().map(|r| r.id).collect();
        let all = ListFilter {
            all: true,
            ..ListFilter::default()
        };
        for name in self.backends.names() {
            let backend = self.backend(name)?;
            let Ok(listed) = backend.list(&all).await else {
                continue; // unreachable: nothing to decide
            };
            for orphan in listed.into_iter().filter(|c| !known.contains(&c.id)) {
                // A create that began after the records were read holds the container's lock
                // from its claim on: busy, or claimed by now, it is not an orphan.
                let Some(_lock) = self.records.try_lock(&orphan.id)? else {
                    continue;
                };
                if self.records.all()?.iter().any(|r| r.id == orphan.id) {
                    continue;
                }
                let what = format!(
                    "{name} container {} ({}): berth has no record of it",
                    orphan.name,
                    short(&orphan.id)
                );
                let result = if options.dry_run {
                    Ok(())
                } else {
                    backend.remove(&orphan.id, RemoveOptions::forced()).await
                };
                report.outcome(what, result);
            }
        }
        Ok(())
    }
}
