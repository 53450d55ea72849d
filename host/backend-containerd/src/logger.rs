//! The logging binary containerd's shim runs for a berth task (`binary://` stdio): berth
//! itself, re-executed as `berth __containerd-log FILE`. The shim hands it the task's stdout
//! and stderr as fds 3 and 4 and waits until fd 5 is closed; it appends each chunk to FILE as
//! one timed JSON line (`berth_core::logs`, the native supervisor's format), so containerd
//! logs are interleaved in the order written and carry their times, and it exits once the
//! output is drained. The shim's SIGTERM at task delete is ignored: the end of the pipes, not
//! the signal, ends it, so no output is lost.
//!
//! It is also the task's attach server, as the native supervisor is its container's
//! (`berth_core::attach`): clients get the output from then on, and on a terminal their stdin
//! goes into the task's stdin FIFO, which the logger holds open for the task's life (the shim
//! shuts the terminal at that FIFO's end of file). What the URI cannot carry (it has one
//! argument) is in `FILE.io`, written before the task is created: the CRI log path, the
//! attach socket, the stdin FIFO and whether the task is on a terminal.
//!
//! The shim holds the pipes' write ends until the task is deleted, so an exited task's logger
//! is still there, waiting: [`wait_drained`] tells when it has written all the task wrote (both
//! pipes empty, the logger blocked waiting for more), which is when `logs` has it all.

use std::fs::{File, OpenOptions};
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};

use berth_core::LogStream;
use berth_core::attach::{Attachments, Served};
use berth_core::logs::CriLog;

pub const LOGGER: &str = "__containerd-log";

/// Runs the logger when `args[1]` names it, returning its exit code; `None` for any other
/// command line.
pub fn dispatch(args: &[String]) -> Option<i32> {
    if args.get(1).map(String::as_str) != Some(LOGGER) {
        return None;
    }
    Some(match args.get(2..) {
        Some([file]) => run(Path::new(file)),
        _ => {
            eprintln!("usage: berth {LOGGER} FILE (run by containerd's shim for berth)");
            2
        }
    })
}

/// What a task's logger does besides writing FILE (`FILE.io`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TaskIo {
    /// The kubelet's log path, written in the CRI's format too.
    pub cri_log: Option<PathBuf>,
    /// Where attach clients connect.
    pub attach_socket: Option<PathBuf>,
    /// The task's stdin FIFO (a terminal's, kept open).
    pub stdin: Option<PathBuf>,
    pub stdin_once: bool,
    /// The task is on a terminal: one output stream, kept for the first client.
    pub tty: bool,
}

impl TaskIo {
    /// Before a task is created: what its logger is to do.
    pub fn write(&self, log: &Path) -> berth_core::Result<()> {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let json = serde_json::json!({
            "cri-log": path(&self.cri_log),
            "attach-socket": path(&self.attach_socket),
            "stdin": path(&self.stdin),
            "stdin-once": self.stdin_once,
            "tty": self.tty,
        });
        berth_core::store::atomic_write(&io_file(log), json.to_string().as_bytes(), 0o600)
    }

    /// What `FILE.io` says; nothing but the log when it is missing or unreadable.
    fn read(log: &Path) -> TaskIo {
        let Ok(json) = std::fs::read(io_file(log))
            .map_err(drop)
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).map_err(drop))
        else {
            return TaskIo::default();
        };
        let path = |key: &str| json[key].as_str().map(PathBuf::from);
        TaskIo {
            cri_log: path("cri-log"),
            attach_socket: path("attach-socket"),
            stdin: path("stdin"),
            stdin_once: json["stdin-once"].as_bool().unwrap_or(false),
            tty: json["tty"].as_bool().unwrap_or(false),
        }
    }
}

fn run(path: &Path) -> i32 {
    // SAFETY: setting a signal's disposition to ignore, before any thread exists.
    unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
    let file = OpenOptions::new().create(true).append(true).open(path);
    let io = TaskIo::read(path);
    // Read-write, so the open never waits; held until the task's output ends.
    let stdin = io
        .stdin
        .as_ref()
        .and_then(|fifo| OpenOptions::new().read(true).write(true).open(fifo).ok());
    // Before the shim is told it may start the task, so an attach right after the start and
    // a reader of the pid file always find them.
    let mut attachments = io.attach_socket.clone().and_then(|socket| {
        let served = Served {
            stdin,
            stdin_once: io.stdin_once,
            tty: io.tty,
            pty: None,
        };
        Attachments::listen(socket, served).ok()
    });
    let _ = berth_core::store::atomic_write(
        &pid_file(path),
        std::process::id().to_string().as_bytes(),
        0o644,
    );
    // SAFETY: fds 3, 4 and 5 are the shim's (stdout, stderr, ready), handed to this process
    // alone; each is owned by one File from here.
    let (stdout, stderr, ready) = unsafe {
        (
            File::from_raw_fd(3),
            File::from_raw_fd(4),
            File::from_raw_fd(5),
        )
    };
    drop(ready); // closed: the shim may start the task
    let Ok(file) = file else {
        return 1; // the task's output then goes nowhere; the shim sees the pipes close
    };
    // On a terminal the shim never writes (nor closes) the stderr pipe.
    let streams = if io.tty {
        vec![(stdout, LogStream::Stdout)]
    } else {
        vec![(stdout, LogStream::Stdout), (stderr, LogStream::Stderr)]
    };
    berth_core::attach::pump(
        streams,
        file,
        io.cri_log.map(CriLog::new),
        attachments.as_mut(),
    );
    0
}

/// Where the logger of `log` finds what else it does.
pub fn io_file(log: &Path) -> PathBuf {
    beside(log, ".io")
}

/// Where the logger of `log` says which process it is.
pub fn pid_file(log: &Path) -> PathBuf {
    beside(log, ".pid")
}

fn beside(log: &Path, suffix: &str) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// Waits, at most `limit`, until everything the task wrote is in `log`: its logger is gone,
/// or it is idle with nothing left in its pipes.
pub async fn wait_drained(log: &Path, limit: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while !drained(log) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

fn drained(log: &Path) -> bool {
    let Some(pid) = std::fs::read_to_string(pid_file(log))
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
    else {
        return true; // never started (the task had no output to take)
    };
    let proc = Path::new("/proc").join(pid.to_string());
    let ours = std::fs::read(proc.join("cmdline")).is_ok_and(|cmdline| {
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        args.get(1) == Some(&LOGGER.as_bytes())
            && args.get(2) == Some(&log.as_os_str().as_encoded_bytes())
    });
    if !ours {
        return true; // it has exited, the file closed behind it
    }
    idle(&proc)
        && [3, 4]
            .iter()
            .all(|fd| unread(&proc.join("fd").join(fd.to_string())) == 0)
}

/// Whether every thread of the process is blocked waiting for input, in `poll(2)` or
/// `read(2)` (field 1 of /proc/PID/task/TID/syscall is the number of the call it waits in).
fn idle(proc: &Path) -> bool {
    let waiting = [libc::SYS_poll, libc::SYS_ppoll, libc::SYS_read].map(|n| n.to_string());
    let Ok(tasks) = std::fs::read_dir(proc.join("task")) else {
        return false;
    };
    let mut threads = 0;
    for task in tasks.flatten() {
        threads += 1;
        let syscall = std::fs::read_to_string(task.path().join("syscall")).unwrap_or_default();
        if !waiting.iter().any(|n| syscall.split(' ').next() == Some(n)) {
            return false;
        }
    }
    threads > 0
}

/// Bytes waiting in the pipe `fd` names (another process's, opened through /proc).
fn unread(fd: &Path) -> i32 {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(pipe) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fd)
    else {
        return 0;
    };
    let mut pending: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer, on a descriptor this owns.
    if unsafe { libc::ioctl(pipe.as_raw_fd(), libc::FIONREAD, &mut pending) } != 0 {
        return 0;
    }
    pending
}

/// The `binary://` URI that makes the shim run this binary as the logger of a task writing to
/// `file`.
pub fn uri(exe: &Path, file: &Path) -> String {
    format!(
        "binary://{}?{LOGGER}={}",
        escape(&exe.display().to_string()),
        escape(&file.display().to_string())
    )
}

/// Percent-encodes all but unreserved characters and `/`.
fn escape(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uri_names_the_binary_and_the_file_and_survives_odd_paths() {
        assert_eq!(
            uri(Path::new("/usr/bin/berth"), Path::new("/run/berth/c 1.log")),
            "binary:///usr/bin/berth?__containerd-log=/run/berth/c%201.log"
        );
        let args = ["berth".to_string(), "run".to_string()];
        assert_eq!(dispatch(&args), None);
    }
}
