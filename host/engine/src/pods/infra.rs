//! A pod's infra process: berth itself, re-executed as `berth __pod-infra POD HOSTNAME [pid]`.
//! It makes the pod's IPC and UTS namespaces, sets the pod's hostname in the latter, says
//! `ready`, and then does nothing until it is killed: its life is the pod's (a pod whose infra
//! process is gone is dead). With `pid` it also makes a PID namespace and forks its init (pid
//! 1 there, reaping what the apps orphan, killed with the infra process). The namespaces
//! themselves are held by namespace files the engine binds once it is ready, so apps join
//! stable paths.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use berth_core::{Error, Result};

pub const INFRA: &str = "__pod-infra";

/// Runs the infra process when `args[1]` names it, returning its exit code; `None` for any
/// other command line. Called first thing in `main`, while the process has one thread (so
/// `unshare` moves all of it).
pub fn dispatch(args: &[String]) -> Option<i32> {
    if args.get(1).map(String::as_str) != Some(INFRA) {
        return None;
    }
    Some(match args.get(2..) {
        Some([_pod, hostname]) => run(hostname, false),
        Some([_pod, hostname, pid]) if pid == "pid" => run(hostname, true),
        _ => {
            eprintln!("usage: berth {INFRA} POD HOSTNAME [pid] (run by berth itself)");
            2
        }
    })
}

fn run(hostname: &str, share_pid: bool) -> i32 {
    use nix::sched::{CloneFlags, unshare};
    let mut flags = CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS;
    if share_pid {
        flags |= CloneFlags::CLONE_NEWPID;
    }
    if let Err(e) = unshare(flags) {
        println!("unshare: {e}");
        return 1;
    }
    if let Err(e) = nix::unistd::sethostname(hostname) {
        println!("sethostname {hostname:?}: {e}");
        return 1;
    }
    // A PID namespace is usable only while its first process lives: fork it.
    // SAFETY: this process has one thread (dispatch runs first thing in main).
    if share_pid && let Ok(nix::unistd::ForkResult::Child) = unsafe { nix::unistd::fork() } {
        pid_init();
    }
    println!("ready");
    // Nothing reads stdout after `ready`: close it, so the pipe never blocks or breaks us.
    // SAFETY: fd 1 is ours and nothing in this process uses it again.
    unsafe { libc::close(1) };
    loop {
        nix::unistd::pause();
    }
}

/// The init of a pod's PID namespace: dies with the infra process, and reaps the orphans of
/// the apps until then.
fn pid_init() -> ! {
    // SAFETY: prctl with constant arguments; fd 1 (the pipe berth reads `ready` from) is the
    // infra process's to write. Should the infra process die before the prctl, the engine
    // still finds this process by its command line and kills it.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::close(1);
    }
    loop {
        if let Err(nix::errno::Errno::ECHILD) = nix::sys::wait::waitpid(None, None) {
            nix::unistd::pause();
        }
    }
}

/// Starts the infra process of `pod` (with a PID namespace when `share_pid`) and waits for it
/// to be ready; its pid.
pub fn spawn(pod: &str, hostname: &str, share_pid: bool) -> Result<u32> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("finding the berth binary for the pod's infra process", e))?;
    let mut command = Command::new(exe);
    command.args([INFRA, pod, hostname]);
    if share_pid {
        command.arg("pid");
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe; the infra process leaves berth's session so that
    // the user's terminal hanging up does not end the pod.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| Error::io("starting the pod's infra process", e))?;
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout is piped");
    let _ = BufReader::new(stdout).read_line(&mut line);
    if line.trim() != "ready" {
        let _ = child.kill();
        let _ = child.wait();
        return Err(Error::io(
            format!("starting the infra process of pod {pod}"),
            std::io::Error::other(if line.trim().is_empty() {
                "it exited before it was ready".to_string()
            } else {
                line.trim().to_string()
            }),
        ));
    }
    Ok(child.id())
}

/// The state letter and kernel start time of process `pid` (fields 3 and 22 of its stat);
/// the start time tells a pid that was reused from the process it named.
fn stat(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields count from the last ')'.
    let mut fields = stat[stat.rfind(')')? + 2..].split(' ');
    let state = fields.next()?.chars().next()?;
    Some((state, fields.nth(18)?.parse().ok()?))
}

/// The kernel's start time of process `pid`.
pub fn start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|(_, started)| started)
}

/// Whether `pid` is still the infra process of `pod` that started at `started` (a zombie,
/// killed and not yet reaped, is not).
pub fn alive(pod: &str, pid: u32, started: u64) -> bool {
    stat(pid).is_some_and(|(state, since)| state != 'Z' && since == started)
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmdline| cmdline.split(|b| *b == 0).any(|arg| arg == pod.as_bytes()))
}

/// SIGKILLs the infra process (if it is still the one recorded) and waits until it is gone.
/// When this process started it, it is reaped here (a long-running server would otherwise
/// collect zombies); init reaps it otherwise.
pub fn kill(pod: &str, pid: u32, started: u64) {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let target = nix::unistd::Pid::from_raw(pid as i32);
    if alive(pod, pid, started) {
        let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL);
    }
    // A dying process has no command line before it is a zombie, so `alive` turns false
    // before a child of ours can be reaped: a child is waited for until `waitpid` has it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while start_time(pid) == Some(started) && std::time::Instant::now() < deadline {
        match waitpid(target, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::ECHILD) if alive(pod, pid, started) => {}
            _ => return, // reaped, or another's child that is dying
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Every live infra process of `pod`, found by its command line: what a create killed before
/// it recorded the process leaves.
pub fn find(pod: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
                args.get(1) == Some(&INFRA.as_bytes()) && args.get(2) == Some(&pod.as_bytes())
            })
        })
        .filter(|pid| start_time(*pid).is_some_and(|started| alive(pod, *pid, started)))
        .collect()
}

/// `/proc/PID/ns/KIND`.
pub fn namespace(pid: u32, kind: &str) -> std::path::PathBuf {
    Path::new("/proc")
        .join(pid.to_string())
        .join("ns")
        .join(kind)
}

#[cfg(test)]
mod tests {
    #[test]
    fn other_commands_pass_through_and_start_times_are_read() {
        let args = ["berth".to_string(), "run".to_string()];
        assert_eq!(super::dispatch(&args), None);
        let me = std::process::id();
        assert!(super::start_time(me).is_some());
        assert_eq!(super::start_time(u32::MAX), None);
    }

    #[test]
    #[allow(clippy::zombie_processes)] // reaped by `kill`: what the test proves
    fn a_killed_child_is_reaped_and_leaves_no_zombie() {
        // `sleep`'s argument plays the pod name the infra process carries on its command line.
        for _ in 0..20 {
            let child = std::process::Command::new("sleep")
                .arg("1001")
                .spawn()
                .unwrap();
            let started = super::start_time(child.id()).unwrap();
            // spawn returns once the exec has begun; the new command line comes a moment later.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while !super::alive("1001", child.id(), started) {
                assert!(std::time::Instant::now() < deadline, "sleep never ran");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            super::kill("1001", child.id(), started);
            assert_eq!(super::start_time(child.id()), None, "not reaped");
        }
    }
}
