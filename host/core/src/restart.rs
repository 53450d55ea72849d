//! Restart policies as docker keeps them (moby's restartmanager): what to do when a
//! container exits, and at boot. Pure decisions; the engine's restart watcher acts on them.
//!
//! A container stopped or killed by a user is never restarted on exit. Each restart waits
//! twice as long as the one before (100 ms, 200 ms, ... up to a minute); a run of at least
//! ten seconds starts the back-off over. `on-failure:N` allows N restarts, `on-failure` any.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::types::RestartPolicy;

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run at least this long resets the back-off.
const STEADY_RUN: Duration = Duration::from_secs(10);

/// What berth remembers of a container's restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Restarts {
    /// Restarts since the last start a user asked for (docker's RestartCount).
    #[serde(default)]
    pub count: u32,
    /// A user stopped or killed it: no restart on exit (a start clears it).
    #[serde(default)]
    pub stop_requested: bool,
    /// The last back-off, in milliseconds (0: none yet).
    #[serde(default)]
    pub delay_ms: u64,
    /// Set while a restart is due (the watcher waits out the back-off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<chrono::DateTime<chrono::Utc>>,
}

impl Restarts {
    pub fn is_empty(&self) -> bool {
        *self == Restarts::default()
    }
}

/// How a container's last run ended.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    /// `None` when nobody saw it end (its supervisor died, the host rebooted).
    pub code: Option<i32>,
    pub ran_for: Duration,
}

impl Exit {
    fn failed(&self) -> bool {
        self.code != Some(0)
    }
}

/// After the container exited: how long to wait before restarting it (and the new
/// back-off to record), or `None` to leave it stopped.
pub fn on_exit(
    policy: RestartPolicy,
    max_retries: Option<u32>,
    restarts: &Restarts,
    exit: Exit,
) -> Option<Duration> {
    if restarts.stop_requested {
        return None;
    }
    let restart = match policy {
        RestartPolicy::No => false,
        RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        RestartPolicy::OnFailure => {
            exit.failed() && max_retries.is_none_or(|max| restarts.count < max)
        }
    };
    restart.then(|| backoff(restarts.delay_ms, exit.ran_for))
}

/// At boot (`berth gc --restart`), for a container that is not running: whether to start it.
/// As docker does when its daemon starts: `always` even if a user stopped it, `unless-stopped`
/// unless one did, `on-failure` if its last run failed and it has retries left.
pub fn at_boot(
    policy: RestartPolicy,
    max_retries: Option<u32>,
    restarts: &Restarts,
    last_exit: Option<i32>,
) -> bool {
    match policy {
        RestartPolicy::No => false,
        RestartPolicy::Always => true,
        RestartPolicy::UnlessStopped => !restarts.stop_requested,
        RestartPolicy::OnFailure => {
            !restarts.stop_requested
                && last_exit != Some(0)
                && max_retries.is_none_or(|max| restarts.count < max)
        }
    }
}

/// The next back-off after `previous_ms`, given how long the last run lasted.
fn backoff(previous_ms: u64, ran_for: Duration) -> Duration {
    let previous = Duration::from_millis(previous_ms);
    if previous.is_zero() || ran_for >= STEADY_RUN {
        FIRST_DELAY
    } else {
        (previous * 2).min(MAX_DELAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: i32) -> Exit {
        Exit {
            code: Some(code),
            ran_for: Duration::from_millis(50),
        }
    }

    fn after(count: u32, delay_ms: u64) -> Restarts {
        Restarts {
            count,
            delay_ms,
            ..Restarts::default()
        }
    }

    #[test]
    fn on_failure_restarts_failures_up_to_its_limit() {
        let p = RestartPolicy::OnFailure;
        assert_eq!(
            on_exit(p, Some(3), &after(0, 0), exit(1)),
            Some(FIRST_DELAY)
        );
        assert!(on_exit(p, Some(3), &after(2, 400), exit(1)).is_some());
        assert_eq!(on_exit(p, Some(3), &after(3, 800), exit(1)), None);
        assert_eq!(on_exit(p, None, &after(0, 0), exit(0)), None);
        assert!(on_exit(p, None, &after(1000, 60_000), exit(2)).is_some());
        let unseen = Exit {
            code: None,
            ran_for: Duration::ZERO,
        };
        assert!(on_exit(p, None, &after(0, 0), unseen).is_some());
    }

    #[test]
    fn always_restarts_any_exit_but_never_what_a_user_stopped() {
        for p in [RestartPolicy::Always, RestartPolicy::UnlessStopped] {
            assert!(on_exit(p, None, &after(5, 100), exit(0)).is_some());
            let stopped = Restarts {
                stop_requested: true,
                ..Restarts::default()
            };
            assert_eq!(on_exit(p, None, &stopped, exit(137)), None);
        }
        assert_eq!(
            on_exit(RestartPolicy::No, None, &after(0, 0), exit(1)),
            None
        );
    }

    #[test]
    fn the_backoff_doubles_to_a_minute_and_resets_after_a_steady_run() {
        let p = RestartPolicy::Always;
        assert_eq!(
            on_exit(p, None, &after(1, 100), exit(1)),
            Some(Duration::from_millis(200))
        );
        assert_eq!(
            on_exit(p, None, &after(9, 40_000), exit(1)),
            Some(MAX_DELAY)
        );
        let steady = Exit {
            code: Some(1),
            ran_for: STEADY_RUN,
        };
        assert_eq!(
            on_exit(p, None, &after(9, 40_000), steady),
            Some(FIRST_DELAY)
        );
    }

    #[test]
    fn at_boot_always_starts_and_unless_stopped_respects_a_stop() {
        let stopped = Restarts {
            stop_requested: true,
            ..Restarts::default()
        };
        assert!(at_boot(RestartPolicy::Always, None, &stopped, Some(0)));
        assert!(!at_boot(RestartPolicy::UnlessStopped, None, &stopped, None));
        assert!(at_boot(
            RestartPolicy::UnlessStopped,
            None,
            &after(0, 0),
            None
        ));
        assert!(at_boot(RestartPolicy::OnFailure, None, &after(0, 0), None));
        assert!(!at_boot(
            RestartPolicy::OnFailure,
            None,
            &after(0, 0),
            Some(0)
        ));
        assert!(!at_boot(
            RestartPolicy::OnFailure,
            Some(2),
            &after(2, 0),
            Some(1)
        ));
        assert!(!at_boot(RestartPolicy::No, None, &after(0, 0), None));
    }
}
