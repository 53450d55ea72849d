//! The logging binary containerd's shim runs for a berth task (`binary://` stdio): berth
//! itself, re-executed as `berth __containerd-log FILE`. The shim hands it the task's stdout
//! and stderr as fds 3 and 4 and waits until fd 5 is closed; it appends each chunk to FILE as
//! one timed JSON line (`berth_core::logs`, the native supervisor's format), so containerd
//! logs are interleaved in the order written and carry their times, and it exits once both
//! pipes are drained. A CRI container's output also goes to its kubelet's log path, which the
//! logger reads from `FILE.cri` (the URI carries one argument only). The shim's SIGTERM at task delete is ignored: the end of the pipes, not
//! the signal, ends it, so no output is lost.
//!
//! The shim holds the pipes' write ends until the task is deleted, so an exited task's logger
//! is still there, waiting: [`wait_drained`] tells when it has written all the task wrote (both
//! pipes empty, both its threads blocked reading them), which is when `logs` has it all.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::sync::Mutex;

use berth_core::LogStream;
use berth_core::logs::{CriLog, encode};

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

fn run(path: &Path) -> i32 {
    // SAFETY: setting a signal's disposition to ignore, before any thread exists.
    unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
    let file = OpenOptions::new().create(true).append(true).open(path);
    let cri = std::fs::read(cri_path_file(path))
        .ok()
        .map(|p| CriLog::new(std::ffi::OsString::from_vec(p)));
    // Before the shim is told it may start the task, so a reader always finds it.
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
    let logs = Mutex::new((file, cri));
    std::thread::scope(|s| {
        s.spawn(|| copy(stderr, LogStream::Stderr, &logs));
        copy(stdout, LogStream::Stdout, &logs);
    });
    0
}

/// Appends what `from` carries until its end, one line per chunk (and the CRI's lines).
fn copy(mut from: File, stream: LogStream, to: &Mutex<(File, Option<CriLog>)>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                let line = encode(stream, &buf[..n]);
                let mut logs = to.lock().unwrap_or_else(|p| p.into_inner());
                let _ = logs.0.write_all(&line);
                if let Some(cri) = &mut logs.1 {
                    cri.write(stream, &buf[..n]);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Where the logger of `log` says which process it is.
pub fn pid_file(log: &Path) -> std::path::PathBuf {
    beside(log, ".pid")
}

/// Where the logger of `log` finds the CRI log path it also writes, when there is one (the
/// shim passes no more than the one argument in a fixed order).
pub fn cri_path_file(log: &Path) -> std::path::PathBuf {
    beside(log, ".cri")
}

fn beside(log: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// Before a task starts: the CRI log path its logger writes too, or none.
pub fn write_cri_path(log: &Path, cri: Option<&Path>) -> berth_core::Result<()> {
    let file = cri_path_file(log);
    match cri {
        Some(path) => {
            berth_core::store::atomic_write(&file, path.as_os_str().as_encoded_bytes(), 0o644)
        }
        None => match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(berth_core::Error::io(
                format!("removing {}", file.display()),
                e,
            )),
            _ => Ok(()),
        },
    }
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
    idle_in_read(&proc)
        && [3, 4]
            .iter()
            .all(|fd| unread(&proc.join("fd").join(fd.to_string())) == 0)
}

/// Whether every thread of the process is blocked in `read(2)` (field 1 of
/// /proc/PID/task/TID/syscall is the number of the call it waits in).
fn idle_in_read(proc: &Path) -> bool {
    let Ok(tasks) = std::fs::read_dir(proc.join("task")) else {
        return false;
    };
    let mut threads = 0;
    for task in tasks.flatten() {
        threads += 1;
        let syscall = std::fs::read_to_string(task.path().join("syscall")).unwrap_or_default();
        if syscall.split(' ').next() != Some(&libc::SYS_read.to_string()) {
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
