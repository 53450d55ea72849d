//! The decision log: one JSON line per plugin answer in `<run-dir>/events.jsonl`, so a user can
//! ask "why was my container denied / placed there" (`berth events`).
//!
//! Each line is written with a single `write` on an `O_APPEND` file, so concurrent berth
//! processes never interleave lines. The log is volatile (run dir), like the containers it
//! explains — and the run dir is often tmpfs, i.e. memory, so the log is size-bounded: its
//! fields are bounded where the answers are taken (`answers`), and once the file passes
//! [`MAX_LOG_BYTES`] it is rotated to `events.jsonl.1` (replacing the previous one), so the two
//! files together never hold much more than twice that. [`read`] and [`follow`] read both, in
//! order.

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

/// Size past which the log is rotated.
pub const MAX_LOG_BYTES: u64 = 4 << 20;

/// The older half of the log at `path`: `events.jsonl.1`.
pub fn rotated_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
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
    /// What the call was allowed of the operation's plugin budget (the smaller of what was
    /// left and the plugin's `timeout-ms`); `latency_us` is what it used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_us: Option<u64>,
    /// `monitor`: recorded only, not acted on.
    pub mode: PluginMode,
    /// Short sha256 of the call's input as JSON: equal inputs, equal digests.
    pub input: String,
}

impl fmt::Display for Decision {
    /// `2025-01-01T10:00:00.123Z guard pre-create web1 patch 125us of 100000us [monitor] env A=1`
    /// (`of`: what the call was allowed of the operation's budget)
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
        if let Some(budget) = self.budget_us {
            write!(f, " of {budget}us")?;
        }
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

/// The name berth's own decisions (a placement fallback) are recorded under, beside the
/// plugins'.
pub const HOST: &str = "berth";

/// Records a decision berth itself took about `container` (`function`: e.g. `fallback`), so
/// `berth events` explains it beside the plugins' answers.
pub fn record_host_decision(host: &HostConfig, function: &str, container: &str, reason: String) {
    let decision = Decision {
        time: Utc::now(),
        plugin: HOST.into(),
        function: function.into(),
        container: container.into(),
        verdict: Verdict::Select,
        input: digest(&(function, container, &reason)),
        reason: Some(reason),
        patch: None,
        latency_us: 0,
        budget_us: None,
        mode: PluginMode::Enforce,
    };
    EventLog::new(log_path(host)).append(&decision);
}

/// First 12 hex digits of the sha256 of `input` as JSON.
pub(crate) fn digest(input: &impl Serialize) -> String {
    let json = serde_json::to_vec(input).expect("plugin inputs serialise");
    hex::encode(&Sha256::digest(json)[..6])
}

/// Appends decisions; the file is opened on the first decision, not before.
pub(crate) struct EventLog {
    path: PathBuf,
    max_bytes: u64,
    file: Mutex<Option<File>>,
}

impl EventLog {
    pub fn new(path: PathBuf) -> EventLog {
        EventLog::bounded(path, MAX_LOG_BYTES)
    }

    /// A log rotated past `max_bytes` (tests use a small one).
    pub fn bounded(path: PathBuf, max_bytes: u64) -> EventLog {
        EventLog {
            path,
            max_bytes,
            file: Mutex::new(None),
        }
    }

    /// Failing to record is logged, not fatal: the log explains decisions, it does not make them.
    pub fn append(&self, decision: &Decision) {
        let mut line = serde_json::to_vec(decision).expect("decisions serialise");
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = self.write(&mut file, &line) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot record a plugin decision");
        }
    }

    /// Appends `line` to the file now at `path`, rotating it first if the line would take it
    /// past the bound. Another berth process may have rotated it since this one opened it: the
    /// open file is then no longer the one at `path`, and the new one is opened.
    fn write(&self, open: &mut Option<File>, line: &[u8]) -> std::io::Result<()> {
        if let Some(file) = open.take()
            && is_at(&file, &self.path)
        {
            *open = Some(file);
        }
        let file = match open {
            Some(file) => file,
            None => open.insert(open_append(&self.path)?),
        };
        let size = file.metadata()?.len();
        if size > 0 && size + line.len() as u64 > self.max_bytes {
            rotate(file, &self.path)?;
            *open = Some(open_append(&self.path)?);
        }
        open.as_mut().expect("opened above").write_all(line)
    }
}

/// Whether `file` is (still) the file at `path`.
fn is_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
    }
}

/// Moves the full log at `path` (open as `file`) to `events.jsonl.1`. Under the file's lock,
/// and only if it is still the file at `path`: two processes finding it full at once rotate it
/// once, and neither moves the other's fresh file over the old half.
fn rotate(file: &File, path: &Path) -> std::io::Result<()> {
    file.lock()?;
    let result = if is_at(file, path) {
        std::fs::rename(path, rotated_path(path))
    } else {
        Ok(())
    };
    file.unlock()?;
    result
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

/// Every decision in the log (its rotated half first), oldest first; a missing log is an
/// empty one.
pub fn read(path: &Path) -> Result<Vec<Decision>> {
    let mut decisions = read_one(&rotated_path(path))?;
    decisions.extend(read_one(path)?);
    Ok(decisions)
}

fn read_one(path: &Path) -> Result<Vec<Decision>> {
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
/// the start with `from_start`, the rotated half included), waiting for more, until it returns
/// `false`. Survives the log not existing yet, being truncated, and being rotated (what was
/// appended to the old file before it moved is still read).
pub fn follow(
    path: &Path,
    from_start: bool,
    mut on_decision: impl FnMut(Decision) -> bool,
) -> Result<()> {
    if from_start {
        for decision in read_one(&rotated_path(path))? {
            if !on_decision(decision) {
                return Ok(());
            }
        }
    }
    let io = |e| {
        Error::io(
            format!("cannot follow the decision log {}", path.display()),
            e,
        )
    };
    let open = || match File::open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(e)),
    };
    let mut current = open()?;
    let mut offset = match (&current, from_start) {
        (Some(file), false) => file.metadata().map_err(io)?.len(),
        _ => 0,
    };
    let mut pending = String::new();
    let mut number = 0;
    loop {
        // Read what the open file has (the old file, if it was rotated since), then move on to
        // the file now at `path` if that is another one.
        let moved = current.as_ref().is_none_or(|file| !is_at(file, path));
        if let Some(file) = &mut current {
            let len = file.metadata().map_err(io)?.len();
            if len < offset {
                // Truncated: start over.
                offset = 0;
                pending.clear();
            }
            if len > offset {
                file.seek(SeekFrom::Start(offset)).map_err(io)?;
                let mut chunk = Vec::new();
                offset += file
                    .take(len - offset)
                    .read_to_end(&mut chunk)
                    .map_err(io)? as u64;
                pending.push_str(&String::from_utf8_lossy(&chunk));
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
        }
        if moved && let Some(file) = open()? {
            current = Some(file);
            offset = 0;
            pending.clear();
            number = 0;
            continue;
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
            budget_us: None,
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
    fn the_log_is_rotated_past_its_bound_and_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut long = decision(Verdict::Deny);
        long.reason = Some("r".repeat(900));
        let line = serde_json::to_vec(&long).unwrap().len() as u64 + 1;
        let log = EventLog::bounded(path.clone(), 10 * line);
        // A second process, rotating the same file.
        let other = EventLog::bounded(path.clone(), 10 * line);
        for i in 0..35 {
            if i % 2 == 0 { &log } else { &other }.append(&long);
        }
        let size = |p: &Path| std::fs::metadata(p).unwrap().len();
        assert!(size(&path) <= 10 * line, "{}", size(&path));
        assert!(size(&rotated_path(&path)) <= 10 * line);
        // Rotated thrice: 30 lines moved and then replaced, 5 kept since.
        assert_eq!(size(&rotated_path(&path)), 10 * line);
        assert_eq!(size(&path), 5 * line);
        assert_eq!(read(&path).unwrap().len(), 15);
    }

    #[test]
    fn follow_reads_on_across_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let line = serde_json::to_vec(&decision(Verdict::Allow)).unwrap().len() as u64 + 1;
        let log = EventLog::bounded(path.clone(), 3 * line);
        log.append(&decision(Verdict::Allow));
        let writer = std::thread::spawn({
            let path = path.clone();
            move || {
                std::thread::sleep(Duration::from_millis(150));
                let log = EventLog::bounded(path, 3 * line);
                for verdict in [
                    Verdict::Deny,
                    Verdict::Patch,
                    Verdict::Select,
                    Verdict::Error,
                ] {
                    log.append(&decision(verdict));
                }
            }
        });
        let mut seen = Vec::new();
        follow(&path, true, |d| {
            seen.push(d.verdict);
            seen.len() < 5
        })
        .unwrap();
        writer.join().unwrap();
        assert_eq!(
            seen,
            [
                Verdict::Allow,
                Verdict::Deny,
                Verdict::Patch,
                Verdict::Select,
                Verdict::Error
            ]
        );
        assert!(rotated_path(&path).exists());
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
