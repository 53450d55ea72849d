//! The per-container supervisor: `berth __native-supervise STATE_DIR RUN_DIR ID`.
//!
//! libcontainer creates containers with raw `clone3`, which is only safe from a single-threaded
//! process, so `start` re-executes the berth binary as this supervisor instead of calling
//! libcontainer from the CLI's tokio runtime. It forks once (so the spawner reaps it at once and
//! the survivor is nobody's zombie), takes the container's supervisor lock for its whole life,
//! mounts the rootfs, creates and starts the container with the output on pipes, reports a
//! [`StartReport`] (one JSON line) to `start` on its stdout (a pipe), then copies output into the log
//! file until the container exits, and records the exit code (128+N for a signal) before
//! cleaning up. The container's init is a direct child (libcontainer clones it as the
//! intermediate's sibling), and the supervisor is a child subreaper too, so `waitpid` sees its
//! real exit status.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

use berth_core::{Error, IoContext, LogStream, Result, Store};
use chrono::Utc;
use libcontainer::container::Container;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::fcntl::OFlag;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, pipe2};

use crate::records::{self, Layout, Phase, StateRecord};
use crate::rootfs;
use crate::terminal::ConsoleSocket;
use berth_core::logs;

/// What the supervisor tells `start`, as data: `start` acts on the kind, never on the text.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub(crate) enum StartReport {
    Started {
        pid: i32,
    },
    /// The command is not in the image (docker's exit 127).
    CommandNotFound {
        message: String,
    },
    Failed {
        message: String,
    },
}

impl StartReport {
    fn send(&self, status: &mut File) {
        let line = serde_json::to_string(self).expect("reports serialise");
        let _ = writeln!(status, "{line}");
    }
}

/// A start failure the supervisor found itself, before libcontainer ran.
struct CommandNotFound(String);

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
    let failed = |status: &mut File, message: String| StartReport::Failed { message }.send(status);
    // Its own session: the user's Ctrl-C or a closing terminal does not reach the container.
    let _ = nix::unistd::setsid();
    // SAFETY: single-threaded here (nothing has spawned a thread yet), so fork is sound.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => return 0,
        Ok(ForkResult::Child) => {}
        Err(e) => {
            failed(&mut status, format!("forking the supervisor: {e}"));
            return 1;
        }
    }
    let store = match Store::open(state_dir, run_dir) {
        Ok(store) => store,
        Err(e) => {
            failed(&mut status, e.to_string());
            return 1;
        }
    };
    match supervise(&store, id, &mut status) {
        Ok(Ok(())) => 0,
        // Only reaches `start` if it is still listening (before `started`); harmless otherwise.
        Ok(Err(CommandNotFound(message))) => {
            StartReport::CommandNotFound { message }.send(&mut status);
            1
        }
        Err(e) => {
            // `start` names the backend and the container itself: send only what went wrong.
            let what = match &e {
                Error::Backend { message, .. } => message.clone(),
                other => other.to_string(),
            };
            failed(&mut status, what);
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

fn supervise(
    store: &Store,
    id: &str,
    status: &mut File,
) -> Result<std::result::Result<(), CommandNotFound>> {
    let _alive = records::supervisor_lock(store, id)?;
    // SAFETY: plain prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let record = records::read_record(store, id)?
        .ok_or_else(|| Error::not_found(berth_core::Object::Container, id))?;
    let layout = Layout::new(store, id);
    let private = PrivateMounts::enter()?;
    layout.mount_rootfs(&record.lower_dirs)?;

    // Read once for both; libcontainer reports an unreadable bundle itself.
    let bundle = oci_spec::runtime::Spec::load(layout.bundle().join("config.json")).ok();
    if let Err(missing) = bundle
        .as_ref()
        .map_or(Ok(()), |spec| find_command(&layout, spec))
    {
        private.leave()?;
        return Ok(Err(missing));
    }
    let (stdin_reader, stdin_writer) = if record.spec.stdin_open && !record.spec.tty {
        let (r, w) = pipe2(OFlag::O_CLOEXEC).context(|| "creating the stdin pipe".into())?;
        (Some(r), Some(File::from(w)))
    } else {
        (None, None)
    };
    let terminal = record.spec.tty.then_some(record.spec.console_size);
    let started = start_container(store, id, &layout, stdin_reader, terminal);
    // The container has its own copy of the mount now (or failed): the private namespace,
    // and with it the supervisor's mount, goes.
    private.leave()?;
    let (mut container, output) = match started {
        Ok(parts) => parts,
        Err(e) => {
            let _ = rootfs::unmount(&layout.rootfs());
            return Err(e);
        }
    };
    // On a terminal the master is the container's stdin as well as its output.
    let (stdin, terminal) = match &output {
        Output::Terminal(master) => {
            let clone = || master.try_clone().context(|| "sharing the terminal".into());
            let stdin = if record.spec.stdin_open {
                Some(clone()?)
            } else {
                None
            };
            (stdin, Some(clone()?))
        }
        Output::Pipes(..) => (stdin_writer, None),
    };
    let served = berth_core::attach::Served {
        stdin,
        stdin_once: record.spec.stdin_once,
        tty: terminal.is_some(),
        pty: terminal,
    };
    let mut attachments =
        match berth_core::attach::Attachments::listen(crate::attach_socket(store, id), served) {
            Ok(attachments) => attachments,
            Err(e) => {
                let _ = container.kill(nix::sys::signal::Signal::SIGKILL, true);
                let _ = container.delete(true);
                let _ = rootfs::unmount(&layout.rootfs());
                return Err(e);
            }
        };
    let pid = container.pid().map(|p| p.as_raw()).unwrap_or(0);
    berth_core::crash::point("native.supervisor.started");
    let mut state = records::read_state(store, id)?.unwrap_or_else(StateRecord::created);
    state.phase = Phase::Running;
    state.pid = Some(pid as u32);
    state.started = Some(Utc::now());
    state.finished = None;
    state.exit_code = None;
    state.detail = None;
    records::write_state(store, id, &state)?;
    // Made before `start` returns: a kubelet may open it before the first line.
    let cri_log = record.spec.log_path.as_ref().map(logs::CriLog::new);
    StartReport::Started { pid }.send(status);
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
    berth_core::attach::pump(streams(output), log, cri_log, Some(&mut attachments));
    drop(attachments);
    let exit_code = reap(Pid::from_raw(pid)).unwrap_or(255);

    state.phase = Phase::Exited;
    state.exit_code = Some(exit_code);
    state.finished = Some(Utc::now());
    if exit_code > 128 {
        state.detail = Some(format!("killed by signal {}", exit_code - 128));
    }
    records::write_state(store, id, &state)?;

    let cgroup = bundle
        .as_ref()
        .and_then(|spec| spec.linux().as_ref()?.cgroups_path().clone());
    release(store, id, cgroup.as_deref());
    rootfs::unmount(&layout.rootfs()).map(Ok)
}

/// The mount namespace the supervisor mounts the rootfs in, a copy of the host's left as soon
/// as the container has its own: the host's mount table does not grow with each running
/// container (every new mount namespace copies it, and libcontainer parses it once per v1
/// cgroup controller, so each `run` would cost more than the last), and a supervisor killed
/// in between leaves no mount behind. The rootfs lives on as the container's root.
struct PrivateMounts {
    host: File,
}

impl PrivateMounts {
    fn enter() -> Result<Self> {
        use nix::mount::{MsFlags, mount};
        let host = File::open("/proc/self/ns/mnt")
            .context(|| "opening the host's mount namespace".into())?;
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
            .context(|| "making the supervisor's mount namespace".into())?;
        // Mounts made here stay here even where the host's are shared.
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_SLAVE,
            None::<&str>,
        )
        .context(|| "making the supervisor's mounts its own".into())?;
        Ok(PrivateMounts { host })
    }

    fn leave(self) -> Result<()> {
        nix::sched::setns(&self.host, nix::sched::CloneFlags::CLONE_NEWNS)
            .context(|| "returning to the host's mount namespace".into())
    }
}

/// What libcontainer's `delete` does once the init is reaped, without its cost: it builds a
/// cgroup manager that reads mountinfo once per v1 controller (a dozen parses) to find
/// directories this supervisor already knows from the bundle. Whatever the init left in its
/// cgroup (only possible when it shares a PID namespace) is killed first, so the cgroup can go;
/// then libcontainer's state directory goes.
fn release(store: &Store, id: &str, cgroup: Option<&std::path::Path>) {
    if let Some(cgroup) = cgroup {
        berth_oci::cgroups::kill_all(cgroup, std::time::Duration::from_secs(10));
        berth_oci::cgroups::remove(cgroup);
    }
    let state = records::libcontainer_root(store).join(id);
    if let Err(e) = std::fs::remove_dir_all(&state)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(id, error = %e, "could not remove libcontainer state");
    }
}

/// Finds the container's command in its mounted rootfs as the kernel will (the process's
/// `PATH` for a bare name; symlinks resolved inside the rootfs, never on the host), so a
/// missing command is known as such rather than read out of libcontainer's message.
fn find_command(
    layout: &Layout,
    spec: &oci_spec::runtime::Spec,
) -> std::result::Result<(), CommandNotFound> {
    let Some(process) = spec.process() else {
        return Ok(());
    };
    let Some(command) = process.args().as_ref().and_then(|a| a.first()) else {
        return Ok(());
    };
    let path = process
        .env()
        .iter()
        .flatten()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("");
    let candidates: Vec<String> = if command.contains('/') {
        vec![command.clone()]
    } else {
        path.split(':')
            .filter(|dir| !dir.is_empty())
            .map(|dir| format!("{dir}/{command}"))
            .collect()
    };
    let mounts = spec.mounts().clone().unwrap_or_default();
    if candidates
        .iter()
        .any(|c| executable_at(&layout.rootfs(), &mounts, c))
    {
        return Ok(());
    }
    Err(CommandNotFound(if command.contains('/') {
        format!("executable '{command}' not found in the image")
    } else {
        format!("executable '{command}' not found in the image's PATH ({path})")
    }))
}

/// Whether the container will find an executable at `path`: under the deepest mount that
/// covers it (a bind mount's source on the host), else in the rootfs. Under a mount berth does
/// not fill itself (tmpfs, proc) it cannot know, and libcontainer is left to judge.
fn executable_at(
    rootfs: &std::path::Path,
    mounts: &[oci_spec::runtime::Mount],
    path: &str,
) -> bool {
    let path = std::path::Path::new(path);
    let covering = mounts
        .iter()
        .filter(|m| path.starts_with(m.destination()))
        .max_by_key(|m| m.destination().components().count());
    match covering {
        None => executable_in(rootfs, &path.to_string_lossy()),
        Some(mount) if mount.typ().as_deref() == Some("bind") => {
            let rest = path.strip_prefix(mount.destination()).expect("covered");
            match mount.source() {
                Some(source) => executable_in(source, &rest.to_string_lossy()),
                None => true,
            }
        }
        Some(_) => true,
    }
}

/// Whether `path` names an executable regular file under `root`, resolved as if `root` were /.
fn executable_in(root: &std::path::Path, path: &str) -> bool {
    use nix::fcntl::{OpenHow, ResolveFlag, openat2};
    use std::os::unix::fs::PermissionsExt;
    let Ok(dir) = File::open(root) else {
        return false;
    };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT);
    let Ok(fd) = openat2(dir.as_raw_fd(), path.trim_start_matches('/'), how) else {
        return false;
    };
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    let file = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    file.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What the container writes to: two pipes, or a terminal (its pty master).
enum Output {
    Pipes(OwnedFd, OwnedFd),
    Terminal(File),
}

/// Builds and starts the container (reading `stdin` when given, else an empty stdin; on a
/// terminal of its own, of the size given if any, when `terminal` is `Some`); returns it with
/// what its output is read from.
fn start_container(
    store: &Store,
    id: &str,
    layout: &Layout,
    stdin: Option<OwnedFd>,
    terminal: Option<Option<berth_core::TerminalSize>>,
) -> Result<(Container, Output)> {
    let root: PathBuf = records::libcontainer_root(store);
    berth_core::store::create_dir_all(&root)?;
    // A previous run that did not clean up (a killed supervisor, a reboot) blocks the id.
    if root.join(id).exists() {
        if let Ok(mut stale) = Container::load(root.join(id)) {
            let _ = stale.delete(true);
        }
        let _ = std::fs::remove_dir_all(root.join(id));
    }
    let console = terminal
        .map(|_| ConsoleSocket::listen(store, id))
        .transpose()?;
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
        .and_then(|b| {
            let b = match &console {
                Some(console) => b.with_console_socket(Some(console.path())),
                None => b.with_stdout(out_w).with_stderr(err_w),
            };
            match stdin {
                Some(stdin) => b.with_stdin(stdin),
                None => b,
            }
            .validate_id()
        })
        .and_then(|b| {
            b.as_init(layout.bundle())
                .with_systemd(false)
                .with_detach(true)
                .build()
        });
    set_sigpipe(libc::SIG_IGN);
    let mut container = built.map_err(|e| fail("create", &e))?;
    let output = match &console {
        Some(console) => match console.receive_master() {
            Ok(master) => {
                // Sized before start: the process's first look at it sees the client's size.
                if let Some(size) = terminal.flatten() {
                    berth_core::terminal::set_size(&master, size);
                }
                Output::Terminal(master)
            }
            Err(e) => {
                let _ = container.delete(true);
                return Err(e);
            }
        },
        None => Output::Pipes(out_r, err_r),
    };
    if let Err(e) = container.start() {
        let _ = container.delete(true);
        return Err(fail("start", &e));
    }
    Ok((container, output))
}

fn set_sigpipe(handler: libc::sighandler_t) {
    // SAFETY: installing SIG_DFL/SIG_IGN is always sound.
    unsafe { libc::signal(libc::SIGPIPE, handler) };
}

/// The container's output streams, for [`berth_core::attach::pump`].
fn streams(output: Output) -> Vec<(File, LogStream)> {
    match output {
        Output::Pipes(out, err) => vec![
            (File::from(out), LogStream::Stdout),
            (File::from(err), LogStream::Stderr),
        ],
        // A terminal has one stream; its master reads EIO once the container's side is closed.
        Output::Terminal(master) => vec![(master, LogStream::Stdout)],
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
