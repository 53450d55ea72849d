//! The decision log: one JSON line per plugin answer in `<run-dir>/events.jsonl`, so a user can
//! ask "why was my container denied / placed there" (`berth events`).
//!
//! Each line is written with a single `write` on an `O_APPEND` file, so concurrent berth
//! processes never interleave lines. The log is volatile (run dir), like the containers it
//! explains.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use berth_core::config::{HostConfig, PluginMode};
use berth_core::{Error, IoContext, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::patch::Patch;

/// File name of the decision log inside the run dir.
pub const FILE_NAME: &str = "events.jsonl";

/// Where the decision log of this host lives.
pub fn log_path(host: &HostConfig) -> PathBuf {
    host.run_dir.join(FILE_NAME)
}

/// What a plugin answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Accepted, no changes.
    Allow,
    /// Refused; `reason` says why.
    Deny,
    /// Accepted with changes; `patch` holds them.
    Patch,
    /// Picked a backend (or generated a name); `reason` holds it.
    Select,
    /// Trapped, timed out, ran out of memory or answered nonsense; `reason` says which, and
    /// whether `on-error = "allow"` skipped the plugin.
    Error,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Patch => "patch",
            Verdict::Select => "select",
            Verdict::Error => "error",
        }
    }
}

/// One plugin answer, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Decision {
    pub time: DateTime<Utc>,
    pub plugin: String,
    /// `validate-name`, `generate-name`, `select-backend` or a hook such as `pre-create`.
    pub function: String,
    /// Container name, else id; empty when neither is known yet.
    pub container: String,
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<Patch>,
    pub latency_us: u64,
    /// `monitor`: recorded only, not acted on.
    pub mode: PluginMode,
    /// Short sha256 of the call's input as JSON: equal inputs, equal digests.
    pub input: String,
}

impl fmt::Display for Decision {
    /// `2025-01-01T10:00:00.123Z guard pre-create web1 patch 125us [monitor] env A=1`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let container = if self.container.is_empty() {
            "-"
        } else {
            &self.container
        };
        write!(
            f,
            "{} {} {} {} {} {}us",
            self.time.to_rfc3339_opts(SecondsFormat::Millis, true),
            self.plugin,
            self.function,
            container,
            self.verdict.as_str(),
            self.latency_us
        )?;
        if self.mode == PluginMode::Monitor {
            f.write_str(" [monitor]")?;
        }
        if let Some(reason) = &self.reason {
            write!(f, " {reason}")?;
        }
        if let Some(patch) = &self.patch {
            write!(f, " {}", patch.summary())?;
        }
        Ok(())
    }
}

/// First 12 hex digits of the sha256 of `input` as JSON.
pub(crate) fn digest(input: &impl Serialize) -> String {
    let json = serde_json::to_vec(input).expect("plugin inputs serialise");
    hex::encode(&Sha256::digest(json)[..6])
}

/// Appends decisions; the file is opened on the first decision, not before.
pub(crate) struct EventLog {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl EventLog {
    pub fn new(path: PathBuf) -> EventLog {
        EventLog {
            path,
            file: Mutex::new(None),
        }
    }

    /// Failing to record is logged, not fatal: the log explains decisions, it does not make them.
    pub fn append(&self, decision: &Decision) {
        let mut line = serde_json::to_vec(decision).expect("decisions serialise");
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let result = match &mut *file {
            Some(f) => f.write_all(&line),
            None => open_append(&self.path).and_then(|mut f| {
                let r = f.write_all(&line);
                *file = Some(f);
                r
            }),
        };
        if let Err(e) = result {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot record a plugin decision");
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

fn parse_line(path: &Path, number: usize, line: &str) -> Result<Decision> {
    serde_json::from_str(line).map_err(|e| Error::Corrupt {
        what: "decision log".into(),
        path: path.to_path_buf(),
        message: format!("line {number}: {e}"),
        hint: "move the file aside; berth starts a new one".into(),
    })
}

/// Every decision in the log, oldest first; a missing log is an empty one.
pub fn read(path: &Path) -> Result<Vec<Decision>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::io(
                format!("cannot open the decision log {}", path.display()),
                e,
            ));
        }
    };
    let mut decisions = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.context(|| format!("cannot read the decision log {}", path.display()))?;
        if !line.trim().is_empty() {
            decisions.push(parse_line(path, i + 1, &line)?);
        }
    }
    Ok(decisions)
}

/// How often `follow` looks for new lines.
const POLL: Duration = Duration::from_millis(100);

/// Calls `on_decision` for every decision appended after the current end of the log (or from
/// the start with `from_start`), waiting for more, until it returns `false`. Survives the log
/// not existing yet and being truncated.
pub fn follow(
    path: &Path,
    from_start: bool,
    mut on_decision: impl FnMut(Decision) -> bool,
) -> Result<()> {
    let io = |e| {
        Error::io(
            format!("cannot follow the decision log {}", path.display()),
            e,
        )
    };
    let mut offset = if from_start {
        0
    } else {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    };
    let mut pending = String::new();
    let mut number = 0;
    loop {
        let len = match std::fs::metadata(path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io(e)),
        };
        if len < offset {
            // Truncated or replaced: start over.
            offset = 0;
            pending.clear();
        }
        if len > offset {
            let mut file = File::open(path).map_err(io)?;
            file.seek(SeekFrom::Start(offset)).map_err(io)?;
            let mut chunk = String::new();
            offset += file
                .take(len - offset)
                .read_to_string(&mut chunk)
                .map_err(io)? as u64;
            pending.push_str(&chunk);
            while let Some(end) = pending.find('\n') {
                let line: String = pending.drain(..=end).collect();
                number += 1;
                if !line.trim().is_empty()
                    && !on_decision(parse_line(path, number, line.trim_end())?)
                {
                    return Ok(());
                }
            }
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(verdict: Verdict) -> Decision {
        Decision {
            time: "2025-01-02T03:04:05.678Z".parse().unwrap(),
            plugin: "guard".into(),
            function: "pre-create".into(),
            container: "web1".into(),
            verdict,
            reason: None,
            patch: None,
            latency_us: 42,
            mode: PluginMode::Enforce,
            input: digest(&"x"),
        }
    }

    #[test]
    fn decisions_are_one_json_line_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run").join(FILE_NAME);
        let log = EventLog::new(path.clone());
        let mut deny = decision(Verdict::Deny);
        deny.reason = Some("no memory limit".into());
        deny.mode = PluginMode::Monitor;
        let mut patch = decision(Verdict::Patch);
        patch.patch = Some(Patch {
            env: [("A".to_string(), "1".to_string())].into(),
            ..Patch::default()
        });
        log.append(&deny);
        log.append(&patch);

        let text = std::fs::read_to_string(&path).unwrap();
        let first = text.lines().next().unwrap();
        assert!(first.starts_with(r#"{"time":"2025-01-02T03:04:05.678Z","plugin":"guard","function":"pre-create","container":"web1","verdict":"deny","reason":"no memory limit","latency-us":42,"mode":"monitor","input":""#), "{first}");
        assert_eq!(read(&path).unwrap(), vec![deny.clone(), patch.clone()]);
        assert_eq!(
            deny.to_string(),
            "2025-01-02T03:04:05.678Z guard pre-create web1 deny 42us [monitor] no memory limit"
        );
        assert!(patch.to_string().ends_with("patch 42us env A=1"), "{patch}");
        assert_eq!(read(&dir.path().join("missing")).unwrap(), vec![]);

        std::fs::write(&path, "{oops\n").unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn follow_sees_appended_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let log = EventLog::new(path.clone());
        log.append(&decision(Verdict::Allow));
        let writer = std::thread::spawn({
            let path = path.clone();
            move || {
                std::thread::sleep(Duration::from_millis(150));
                EventLog::new(path).append(&decision(Verdict::Deny));
            }
        });
        let mut seen = Vec::new();
        follow(&path, false, |d| {
            seen.push(d.verdict);
            false
        })
        .unwrap();
        writer.join().unwrap();
        assert_eq!(seen, vec![Verdict::Deny]);
        assert_eq!(digest(&"x").len(), 12);
    }
}
