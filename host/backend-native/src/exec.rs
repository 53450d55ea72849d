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

use std::collections::HashMap;

use berth_core::Store;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::wait::{WaitStatus, waitpid};
use serde::{Deserialize, Serialize};

use std::sync::atomic::{AtomicBool, Ordering};

use crate::records;
use crate::supervisor::chain;

/// Set by SIGTERM; the wait loop then kills the process.
static TERMINATED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigterm(_: libc::c_int) {
    TERMINATED.store(true, Ordering::SeqCst);
}

/// SIGTERM interrupts `waitpid` (no SA_RESTART) instead of ending this process.
fn catch_sigterm() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_sigterm),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    let _ = unsafe { sigaction(Signal::SIGTERM, &action) };
}

/// What `exec` asks for, passed as one JSON argument.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ExecRequest {
    pub command: Vec<String>,
    pub env: HashMap<String, String>,
    pub cwd: Option<String>,
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
    catch_sigterm();
    let built = ContainerBuilder::new(id.clone(), SyscallType::default())
        .with_root_path(records::libcontainer_root(&store))
        .and_then(|b| b.validate_id())
        .and_then(|b| {
            b.as_tenant()
                .with_env(request.env)
                .with_cwd(request.cwd)
                .with_container_args(request.command.clone())
                .with_detach(false)
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
