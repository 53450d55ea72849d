//! The per-container supervisor: `berth __native-supervise STATE_DIR RUN_DIR ID`.
//!
//! libcontainer creates containers with raw `clone3`, which is only safe from a single-threaded
//! process, so `start` re-executes the berth binary as this supervisor instead of calling
//! libcontainer from the CLI's tokio runtime. It forks once (so the spawner reaps it at once and
//! the survivor is nobody's zombie), takes the container's supervisor lock for its whole life,
//! mounts the rootfs, creates and starts the container with the output on pipes, reports
//! `ok PID` or `err MESSAGE` to `start` on its stdout (a pipe), then copies output into the log
//! file until the container exits, and records the exit code (128+N for a signal) before
//! cleaning up. The container's init is a direct child (libcontainer clones it as the
//! intermediate's sibling), and the supervisor is a child subreaper too, so `waitpid` sees its
//! real exit status.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

use berth_core::{Error, IoContext, LogStream, Result, Store};
use chrono::Utc;
use libcontainer::container::Container;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, pipe2};

use crate::records::{self, Layout, Phase, StateRecord};
use crate::{logs, rootfs};

/// Entry point from [`crate::reexec::dispatch`]; `args` are the ones after the subcommand.
pub fn main(args: &[String]) -> i32 {
    let [state_dir, run_dir, id] = args else {
        eprintln!("usage: berth __native-supervise STATE_DIR RUN_DIR ID");
        return 2;
    };
    let mut status = match status_pipe() {
        Ok(status) => status,
        Err(e) => {
            eprintln!("berth supervisor: {e}");
            return 1;
        }
    };
    // Its own session: the user's Ctrl-C or a closing terminal does not reach the container.
    let _ = nix::unistd::setsid();
    // SAFETY: single-threaded here (nothing has spawned a thread yet), so fork is sound.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => return 0,
        Ok(ForkResult::Child) => {}
        Err(e) => {
            let _ = writeln!(status, "err forking the supervisor: {e}");
            return 1;
        }
    }
    let store = match Store::open(state_dir, run_dir) {
        Ok(store) => store,
        Err(e) => {
            let _ = writeln!(status, "err {}", one_line(&e.to_string()));
            return 1;
        }
    };
    match supervise(&store, id, &mut status) {
        Ok(()) => 0,
        Err(e) => {
            // Only reaches `start` if it is still listening (before "ok"); harmless otherwise.
            // `start` names the backend and the container itself: send only what went wrong.
            let what = match &e {
                Error::Backend { message, .. } => message.clone(),
                other => other.to_string(),
            };
            let _ = writeln!(status, "err {}", one_line(&what));
            1
        }
    }
}

/// `start` hands over the status pipe as stdout: keep it apart (close-on-exec, so the
/// container never inherits it) and point stdout at /dev/null.
fn status_pipe() -> std::io::Result<File> {
    let stdout = std::io::stdout();
    let status = stdout.as_fd().try_clone_to_owned()?;
    let null = File::options().write(true).open("/dev/null")?;
    // SAFETY: dup2 onto fd 1, which this process owns; nothing is writing to it concurrently.
    if unsafe { libc::dup2(null.as_raw_fd(), libc::STDOUT_FILENO) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(File::from(status))
}

fn one_line(text: &str) -> String {
    text.replace('\n', " ")
}

/// A libcontainer error with its causes, on one line.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn supervise(store: &Store, id: &str, status: &mut File) -> Result<()> {
    let _alive = records::supervisor_lock(store, id)?;
    // SAFETY: plain prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let record =
        records::read_record(store, id)?.ok_or_else(|| Error::not_found("container", id))?;
    let layout = Layout::new(store, id);
    rootfs::mount_overlay(
        &record.lower_dirs,
        &layout.upper(),
        &layout.work(),
        &layout.rootfs(),
    )?;

    let started = start_container(store, id, &layout);
    let (mut container, out, err) = match started {
        Ok(parts) => parts,
        Err(e) => {
            let _ = rootfs::unmount(&layout.rootfs());
            return Err(e);
        }
    };
    let pid = container.pid().map(|p| p.as_raw()).unwrap_or(0);
    let mut state = records::read_state(store, id)?.unwrap_or_else(StateRecord::created);
    state.phase = Phase::Running;
    state.pid = Some(pid as u32);
    state.started = Some(Utc::now());
    state.finished = None;
    state.exit_code = None;
    state.detail = None;
    records::write_state(store, id, &state)?;
    let _ = writeln!(status, "ok {pid}");
    // Closing the status pipe tells `start` the container is up; later errors go to the record.
    drop(std::mem::replace(
        status,
        File::open("/dev/null").context(|| "opening /dev/null".into())?,
    ));

    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(layout.log())
        .context(|| format!("opening {}", layout.log().display()))?;
    pump(out, err, log);
    let exit_code = reap(Pid::from_raw(pid)).unwrap_or(255);

    state.phase = Phase::Exited;
    state.exit_code = Some(exit_code);
    state.finished = Some(Utc::now());
    if exit_code > 128 {
        state.detail = Some(format!("killed by signal {}", exit_code - 128));
    }
    records::write_state(store, id, &state)?;

    if let Err(e) = container.delete(true) {
        tracing::warn!(id, error = %chain(&e), "could not delete libcontainer state");
    }
    rootfs::unmount(&layout.rootfs())
}

/// Builds and starts the container; returns it with the read ends of its stdout and stderr.
fn start_container(
    store: &Store,
    id: &str,
    layout: &Layout,
) -> Result<(Container, OwnedFd, OwnedFd)> {
    let root: PathBuf = records::libcontainer_root(store);
    berth_core::store::create_dir_all(&root)?;
    // A previous run that did not clean up (a killed supervisor, a reboot) blocks the id.
    if root.join(id).exists() {
        if let Ok(mut stale) = Container::load(root.join(id)) {
            let _ = stale.delete(true);
        }
        let _ = std::fs::remove_dir_all(root.join(id));
    }
    let pipe = || pipe2(OFlag::O_CLOEXEC).context(|| "creating output pipes".into());
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let fail = |operation: &'static str, e: &dyn std::error::Error| {
        Error::backend("native", operation, format!("container {id}"), chain(e))
    };

    // Rust ignores SIGPIPE and libcontainer does not reset it: let the container inherit the
    // default, then ignore it again so a vanished `start` cannot kill the supervisor.
    set_sigpipe(libc::SIG_DFL);
    let built = ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_root_path(&root)
        .and_then(|b| b.with_stdout(out_w).with_stderr(err_w).validate_id())
        .and_then(|b| {
            b.as_init(layout.bundle())
                .with_systemd(false)
                .with_detach(true)
                .build()
        });
    set_sigpipe(libc::SIG_IGN);
    let mut container = built.map_err(|e| fail("create", &e))?;
    if let Err(e) = container.start() {
        let _ = container.delete(true);
        return Err(fail("start", &e));
    }
    Ok((container, out_r, err_r))
}

fn set_sigpipe(handler: libc::sighandler_t) {
    // SAFETY: installing SIG_DFL/SIG_IGN is always sound.
    unsafe { libc::signal(libc::SIGPIPE, handler) };
}

/// Copies both output pipes into the log until both reach end of file (every process of the
/// container has exited or closed them).
fn pump(out: OwnedFd, err: OwnedFd, mut log: File) {
    let mut streams: Vec<(File, LogStream)> = vec![
        (File::from(out), LogStream::Stdout),
        (File::from(err), LogStream::Stderr),
    ];
    let mut buf = vec![0u8; 64 * 1024];
    while !streams.is_empty() {
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd> = streams
                .iter()
                .map(|(f, _)| PollFd::new(f.as_fd(), PollFlags::POLLIN))
                .collect();
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => fds
                    .iter()
                    .map(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
                    .collect(),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
        };
        let mut closed = Vec::new();
        for (i, is_ready) in ready.into_iter().enumerate() {
            if !is_ready {
                continue;
            }
            let (file, stream) = &mut streams[i];
            match file.read(&mut buf) {
                Ok(0) => closed.push(i),
                Ok(n) => {
                    let _ = log.write_all(&logs::encode(*stream, &buf[..n]));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => closed.push(i),
            }
        }
        for i in closed.into_iter().rev() {
            streams.remove(i);
        }
    }
}

/// Waits for the container's init and turns its status into an exit code (128+N for signal N).
fn reap(pid: Pid) -> Option<i32> {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Some(code),
            Ok(WaitStatus::Signaled(_, signal, _)) => return Some(128 + signal as i32),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}
