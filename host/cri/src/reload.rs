//! Hot reload of the serving process's plugins: on SIGHUP (which `berth plugin reload` sends)
//! the server reads berth.toml again and swaps in its `[[plugins]]`, compiled beside the
//! running set; a set that fails to load leaves the old one serving. Each outcome is kept for
//! `Status` and written to `<run-dir>/cri-plugins.json`, which `berth plugin reload` and
//! `berth plugin ls` read.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_core::{Config, Error, Result};
use berth_engine::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What the serving process runs, and how its last reload went.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PluginState {
    /// The serving process.
    pub pid: u32,
    /// Counts finished reloads (0: none yet), so a waiter knows when its own has finished.
    pub generation: u64,
    /// The plugins serving now, by name.
    pub serving: Vec<String>,
    /// Why the last reload failed; `None` when it worked (or none has run).
    pub failed: Option<String>,
    /// The failure's kind is a configuration error (exit 78) rather than a plugin's (70).
    #[serde(default)]
    pub config_error: bool,
    pub at: Option<DateTime<Utc>>,
}

/// The state file of the server on `run_dir`.
pub fn state_file(run_dir: &Path) -> PathBuf {
    run_dir.join("cri-plugins.json")
}

/// The state a server on `run_dir` last wrote, if a server wrote one.
pub fn read_state(run_dir: &Path) -> Option<PluginState> {
    let text = std::fs::read(state_file(run_dir)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Whether the server that wrote `state` still runs.
pub fn serving(state: &PluginState) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    state.pid != 0 && unsafe { libc::kill(state.pid as i32, 0) } == 0
}

pub(crate) struct Reloader {
    engine: Arc<Engine>,
    config: Box<dyn Fn() -> Result<Config> + Send + Sync>,
    state: Mutex<PluginState>,
}

fn names(engine: &Engine) -> Result<Vec<String>> {
    Ok(engine
        .plugins()?
        .map(|host| host.summaries().into_iter().map(|p| p.name).collect())
        .unwrap_or_default())
}

impl Reloader {
    /// Loads the configured plugins now (a broken set fails the server's start, not its
    /// first call) and records them.
    pub fn start(
        engine: Arc<Engine>,
        config: Box<dyn Fn() -> Result<Config> + Send + Sync>,
    ) -> Result<Reloader> {
        let state = PluginState {
            pid: std::process::id(),
            serving: names(&engine)?,
            ..PluginState::default()
        };
        let reloader = Reloader {
            engine,
            config,
            state: Mutex::new(state),
        };
        reloader.publish()?;
        Ok(reloader)
    }

    pub fn state(&self) -> PluginState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn publish(&self) -> Result<()> {
        let state = self.state();
        let path = state_file(&self.engine.config.host.run_dir);
        let json = serde_json::to_vec_pretty(&state).expect("plugin state serialises");
        berth_core::store::atomic_write(&path, &json, 0o644)
    }

    /// One reload: the config read again, its plugins loaded and swapped in, or the failure
    /// kept beside the set still serving.
    pub fn reload(&self) {
        let outcome = (self.config)().and_then(|config| {
            self.engine.reload_plugins(&config)?;
            names(&self.engine)
        });
        {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.generation += 1;
            state.at = Some(Utc::now());
            match outcome {
                Ok(serving) => {
                    tracing::info!(plugins = ?serving, "reloaded the plugins");
                    state.serving = serving;
                    state.failed = None;
                    state.config_error = false;
                }
                Err(e) => {
                    tracing::error!(error = %e, "reloading the plugins failed; the running set stays");
                    state.config_error = e.kind() == berth_core::ErrorKind::Config;
                    state.failed = Some(e.to_string());
                }
            }
        }
        if let Err(e) = self.publish() {
            tracing::warn!(error = %e, "cannot record the reload's outcome");
        }
    }

    /// Reloads on every SIGHUP until the process ends.
    pub async fn on_hangup(self: Arc<Self>) {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot watch SIGHUP: plugins will not reload");
            return;
        };
        while hangups.recv().await.is_some() {
            let reloader = self.clone();
            // Compiling components is CPU work: off the threads serving calls.
            let _ = tokio::task::spawn_blocking(move || reloader.reload()).await;
        }
    }

    /// Removes the state file at the server's exit.
    pub fn finish(&self) {
        let _ = std::fs::remove_file(state_file(&self.engine.config.host.run_dir));
    }
}

/// `berth plugin reload`: SIGHUP to the server on `run_dir`, then its outcome once it is
/// recorded (at most `limit` later).
pub fn request(run_dir: &Path, limit: std::time::Duration) -> Result<PluginState> {
    let before = read_state(run_dir)
        .filter(serving)
        .ok_or_else(|| Error::Unavailable {
            service: "berth cri serve".into(),
            endpoint: format!("run-dir {}", run_dir.display()),
            reason: "no server runs there".into(),
            hint:
                "start one with `berth cri serve`; other commands load the plugins afresh each run"
                    .into(),
        })?;
    // SAFETY: a signal to the pid the server recorded, checked alive just above.
    unsafe { libc::kill(before.pid as i32, libc::SIGHUP) };
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(state) = read_state(run_dir).filter(|s| s.generation > before.generation) {
            return Ok(state);
        }
        if std::time::Instant::now() > deadline {
            return Err(Error::Timeout {
                operation: "plugin reload",
                object: format!("berth cri serve (pid {})", before.pid),
                seconds: limit.as_secs(),
                hint: "see the server's log".into(),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
