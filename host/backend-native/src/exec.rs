//! `berth __native-exec STATE_DIR RUN_DIR ID REQUEST_JSON`: one process inside a running
//! container.
//!
//! Like the supervisor, this runs libcontainer's tenant builder from a fresh single-threaded
//! process (the CLI's runtime has threads, and libcontainer uses raw `clone3`). The new process
//! joins the container's namespaces and cgroup, inherits this process's stdio (the user's
//! terminal or pipes), and this process exits with its exit code (128+N for signal N). Errors
//! before the command runs print one line on stderr and exit 126 (or 127 for a missing command),
//! as docker does. A SIGTERM to this process kills the one it runs (how an exec's timeout ends
//! it: the process is in the container's PID namespace, out of the caller's reach).
//!
//! With `tty` the process gets a terminal of its own (a pty made in the container, its master
//! received here): this process relays its stdin into it and its output out of it, in raw mode
//! and following SIGWINCH when its own stdin is the user's terminal, or reading [`Input`]
//! frames (stdin and window sizes) from a caller that has a terminal elsewhere (`framed`).

use std::collections::HashMap;

use berth_core::Store;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::wait::{WaitStatus, waitpid};
use serde::{Deserialize, Serialize};

use std::sync::atomic::{AtomicBool, Ordering};

use crate::records;
use crate::supervisor::chain;
use crate::terminal::ConsoleSocket;
use berth_core::attach::{Input, InputFrames};

/// Set by SIGTERM; the wait loop then kills the process.
static TERMINATED: AtomicBool = AtomicBool::new(false);
/// Set by SIGWINCH; the terminal relay then passes the new size on.
static RESIZED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(signal: libc::c_int) {
    let flag = if signal == libc::SIGWINCH {
        &RESIZED
    } else {
        &TERMINATED
    };
    flag.store(true, Ordering::SeqCst);
}

/// SIGTERM and SIGWINCH interrupt `waitpid` and `poll` (no SA_RESTART) instead of ending
/// this process or going unseen.
fn catch_signals() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for signal in [Signal::SIGTERM, Signal::SIGWINCH] {
        // SAFETY: the handler only stores to atomics, which is async-signal-safe.
        let _ = unsafe { sigaction(signal, &action) };
    }
}

/// What `exec` asks for, passed as one JSON argument.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ExecRequest {
    pub command: Vec<String>,
    pub env: HashMap<String, String>,
    pub cwd: Option<String>,
    /// The process gets a terminal.
    #[serde(default)]
    pub tty: bool,
    /// With `tty`: stdin carries [`Input`] frames rather than the raw keystrokes.
    #[serde(default)]
    pub framed: bool,
}

pub fn main(args: &[String]) -> i32 {
    let [state_dir, run_dir, id, request] = args else {
        eprintln!("usage: berth __native-exec STATE_DIR RUN_DIR ID REQUEST_JSON");
        return 2;
    };
    let request: ExecRequest = match serde_json::from_str(request) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("berth: bad exec request: {e}");
            return 2;
        }
    };
    let store = match Store::open(state_dir, run_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("berth: {e}");
            return 126;
        }
    };
    // The container's process gets the default SIGPIPE, not Rust's ignored one.
    // SAFETY: installing SIG_DFL is always sound.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    catch_signals();
    let terminal = if request.tty {
        match TerminalExec::prepare(&store, id, &request) {
            Ok(terminal) => Some(terminal),
            Err(e) => {
                eprintln!("berth: exec {:?} in container {id}: {e}", request.command);
                return 126;
            }
        }
    } else {
        None
    };
    let built = ContainerBuilder::new(id.clone(), SyscallType::default())
        .with_root_path(records::libcontainer_root(&store))
        .and_then(|b| match &terminal {
            Some(t) => b.with_console_socket(Some(t.console.path())).validate_id(),
            None => b.validate_id(),
        })
        .and_then(|b| {
            let tenant = b
                .as_tenant()
                .with_env(request.env.clone())
                .with_cwd(request.cwd.clone())
                .with_container_args(request.command.clone());
            match &terminal {
                // The process is described whole, so it keeps the container's user and
                // capabilities; libcontainer wants a console socket only when detached.
                Some(t) => tenant.with_process(Some(&t.process)).with_detach(true),
                None => tenant.with_detach(false),
            }
            .build()
        });
    let pid = match built {
        Ok(pid) => pid,
        Err(e) => {
            let text = chain(&e);
            eprintln!(
                "berth: exec {:?} in container {id}: {text}",
                request.command
            );
            return if text.contains("not found") { 127 } else { 126 };
        }
    };
    if let Some(terminal) = terminal {
        match terminal.console.receive_master() {
            Ok(master) => relay(&master, request.framed, pid),
            Err(e) => {
                eprintln!("berth: exec {:?} in container {id}: {e}", request.command);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
    loop {
        if TERMINATED.load(Ordering::SeqCst) {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, signal, _)) => return 128 + signal as i32,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("berth: waiting for the exec'd process: {e}");
                return 126;
            }
        }
    }
}

/// An exec on a terminal: the console socket libcontainer sends its pty to, and the process
/// description it runs (the container's own, with this exec's command, env and cwd).
struct TerminalExec {
    console: ConsoleSocket,
    process: std::path::PathBuf,
}

impl TerminalExec {
    fn prepare(store: &Store, id: &str, request: &ExecRequest) -> berth_core::Result<Self> {
        let name = format!("exec-{}", std::process::id());
        let console = ConsoleSocket::listen(store, &name)?;
        let config = records::Layout::new(store, id).bundle().join("config.json");
        let spec = oci_spec::runtime::Spec::load(&config).map_err(|e| {
            berth_core::Error::backend(
                "native",
                "exec in",
                format!("container {id}"),
                format!("reading {}: {e}", config.display()),
            )
        })?;
        let process = berth_oci::spec::exec_process(
            spec.process().clone().unwrap_or_default(),
            &request.command,
            &request.env,
            request.cwd.as_deref(),
            true,
            None,
        );
        let path = console.path().with_extension("json");
        let json = serde_json::to_vec(&process).expect("processes serialise");
        berth_core::store::atomic_write(&path, &json, 0o600)?;
        Ok(TerminalExec {
            console,
            process: path,
        })
    }
}

impl Drop for TerminalExec {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.process);
    }
}

/// Copies this process's stdin into the terminal and the terminal's output to stdout until the
/// process's side of it is closed; sizes it from this process's terminal when it has one.
fn relay(master: &std::fs::File, framed: bool, pid: nix::unistd::Pid) {
    use berth_core::terminal;
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    let stdin = std::io::stdin();
    let _raw = (!framed)
        .then(|| terminal::RawMode::enter(stdin.as_fd()))
        .flatten();
    let resize_from_user = || {
        if let Some(size) = terminal::user_size() {
            terminal::set_size(master, size);
        }
    };
    if !framed {
        resize_from_user();
    }
    let mut frames = InputFrames::default();
    let mut reading_stdin = true;
    let mut buf = vec![0u8; 32 * 1024];
    let mut out = std::io::stdout();
    loop {
        if TERMINATED.load(Ordering::SeqCst) {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
        if RESIZED.swap(false, Ordering::SeqCst) && !framed {
            resize_from_user();
        }
        let (stdin_ready, master_ready) = {
            let mut fds = vec![PollFd::new(master.as_fd(), PollFlags::POLLIN)];
            if reading_stdin {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {
                    let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
                    (fds.get(1).is_some_and(ready), ready(&fds[0]))
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            }
        };
        if master_ready {
            match (&*master).read(&mut buf) {
                // EIO: every descriptor of the process's side is closed.
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                        return;
                    }
                }
            }
        }
        if stdin_ready {
            match stdin.lock().read(&mut buf) {
                Ok(0) | Err(_) => reading_stdin = false,
                Ok(n) if !framed => {
                    let _ = (&*master).write_all(&buf[..n]);
                }
                Ok(n) => match frames.push(&buf[..n]) {
                    Ok(inputs) => {
                        for input in inputs {
                            match input {
                                Input::Stdin(data) => {
                                    let _ = (&*master).write_all(&data);
                                }
                                Input::Resize(size) => terminal::set_size(master, size),
                            }
                        }
                    }
                    Err(_) => reading_stdin = false,
                },
            }
        }
    }
}
