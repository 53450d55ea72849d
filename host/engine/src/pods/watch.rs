//! An app whose exit stops its pod (`stop-pod-on-exit` in a manifest) is watched by a process
//! of its own: berth re-executed as `berth __pod-watch POD APP-PID APP-START INFRA-PID
//! INFRA-START [CONFIG]`, started once the app runs. It waits on both processes through
//! pidfds: when the infra process ends first the pod was stopped some other way and it ends
//! too; when the app ends it becomes `berth pod stop --if-infra PID:START POD`, which stops
//! the pod only if it still runs on that infra process (a pod stopped and started again in
//! the meantime is left alone). No daemon: the watcher lives exactly as long as it matters.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use berth_core::{Error, Result};

use super::infra;

pub const WATCH: &str = "__pod-watch";

/// A process as the kernel knows it: its pid and its start time (which tells it from a later
/// process given the same pid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    pub started: u64,
}

impl Process {
    /// `PID:START`, as `--if-infra` takes it.
    pub fn to_arg(self) -> String {
        format!("{}:{}", self.pid, self.started)
    }

    pub fn parse(text: &str) -> Option<Process> {
        let (pid, started) = text.split_once(':')?;
        Some(Process {
            pid: pid.parse().ok()?,
            started: started.parse().ok()?,
        })
    }

    /// A pidfd for this process, or `None` when it has already ended.
    fn open(self) -> Option<OwnedFd> {
        // SAFETY: pidfd_open with a pid and no flags; the fd returned is owned from here on.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, self.pid as libc::c_int, 0) };
        if fd < 0 {
            return None;
        }
        // SAFETY: a fresh fd nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
        // Checked after opening: the pidfd now pins this pid, so a match is this process.
        (infra::start_time(self.pid) == Some(self.started)).then_some(fd)
    }
}

/// Runs the watcher when `args[1]` names it; `None` for any other command line.
pub fn dispatch(args: &[String]) -> Option<i32> {
    if args.get(1).map(String::as_str) != Some(WATCH) {
        return None;
    }
    let usage = || {
        eprintln!(
            "usage: berth {WATCH} POD APP-PID APP-START INFRA-PID INFRA-START [CONFIG] (run by berth itself)"
        );
        2
    };
    let number = |i: usize| args.get(i).and_then(|a| a.parse().ok());
    let (Some(pod), Some(app_pid), Some(app_start), Some(infra_pid), Some(infra_start)) =
        (args.get(2), number(3), number(4), number(5), number(6))
    else {
        return Some(usage());
    };
    let app = Process {
        pid: app_pid as u32,
        started: app_start,
    };
    let infra = Process {
        pid: infra_pid as u32,
        started: infra_start,
    };
    Some(watch(pod, app, infra, args.get(7).map(String::as_str)))
}

fn watch(pod: &str, app: Process, infra: Process, config: Option<&str>) -> i32 {
    let Some(infra_fd) = infra.open() else {
        return 0;
    };
    if let Some(app_fd) = app.open() {
        let mut fds = [app_fd.as_raw_fd(), infra_fd.as_raw_fd()].map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        loop {
            // SAFETY: two valid pollfds, owned above for the whole call.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if ready > 0 {
                break;
            }
            if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return 1;
            }
        }
        if fds[1].revents != 0 {
            return 0;
        }
    }
    let mut stop = Command::new("/proc/self/exe");
    if let Some(config) = config {
        stop.args(["--config", config]);
    }
    let error = stop
        .args(["pod", "stop", "--if-infra", &infra.to_arg(), pod])
        .exec();
    eprintln!("berth {WATCH}: cannot run `berth pod stop`: {error}");
    1
}

/// Starts the watcher of `app` in `pod`, detached (its own session, no terminal), and leaves
/// it: it ends by itself.
pub fn spawn(pod: &str, app: Process, infra: Process, config: Option<&str>) -> Result<()> {
    let mut args = vec![WATCH.to_string(), pod.to_string()];
    for number in [app.pid as u64, app.started, infra.pid as u64, infra.started] {
        args.push(number.to_string());
    }
    args.extend(config.map(str::to_string));
    detached(&args, &format!("the watcher of an app of pod {pod}"))
}

/// Runs berth itself with `args`, detached (its own session, no stdio), and leaves it;
/// `what` names it in errors.
pub(crate) fn detached(args: &[String], what: &str) -> Result<()> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::io(format!("finding the berth binary for {what}"), e))?;
    let mut command = Command::new(exe);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe; the process leaves berth's session so that the
    // user's terminal hanging up does not end it.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| Error::io(format!("starting {what}"), e))?;
    // Reaped when it ends, so a long-running server keeps no zombie of it.
    std::thread::spawn(move || child.wait());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_round_trip_and_an_ended_one_opens_no_pidfd() {
        let me = Process {
            pid: std::process::id(),
            started: infra::start_time(std::process::id()).unwrap(),
        };
        assert_eq!(Process::parse(&me.to_arg()), Some(me));
        assert!(me.open().is_some());
        let reused = Process {
            started: me.started + 1,
            ..me
        };
        assert!(
            reused.open().is_none(),
            "another start time is another process"
        );
        assert_eq!(Process::parse("12"), None);
        let args = ["berth".to_string(), "ps".to_string()];
        assert_eq!(dispatch(&args), None);
    }
}
