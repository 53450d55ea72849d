//! `exec` on containerd: an extra process in a running task, its stdio streamed through three
//! FIFOs that the shim opens on its side and berth on this one (this process's stdin in,
//! stdout and stderr out), so `echo x | berth exec web cat` prints `x`.

use std::path::{Path, PathBuf};

use berth_core::{Error, ExecSpec, ExecStreams, Result, TerminalSize};
use tokio::net::unix::pipe;

/// The three FIFOs of one exec, removed with their directory on drop.
pub struct Fifos {
    dir: PathBuf,
    pub stdin: PathBuf,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Fifos {
    pub fn create(dir: PathBuf) -> Result<Fifos> {
        berth_core::store::create_dir_all(&dir)?;
        let fifos = Fifos {
            stdin: dir.join("stdin"),
            stdout: dir.join("stdout"),
            stderr: dir.join("stderr"),
            dir,
        };
        for path in [&fifos.stdin, &fifos.stdout, &fifos.stderr] {
            mkfifo(path)?;
        }
        Ok(fifos)
    }
}

impl Drop for Fifos {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn mkfifo(path: &Path) -> Result<()> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::invalid(format!("path {}", path.display()), "contains a NUL byte"))?;
    // SAFETY: a valid NUL-terminated path and a mode.
    if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } != 0 {
        return Err(Error::io(
            format!("creating {}", path.display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// This side of the FIFOs, opened before the shim opens its side so neither blocks.
pub struct Streams {
    stdin: pipe::Sender,
    /// On a terminal, the stdin FIFO held open until the process's output ends: the shim
    /// shuts the terminal at the FIFO's end of file.
    held_stdin: Option<std::fs::File>,
    stdout: pipe::Receiver,
    /// None on a terminal, whose output is one stream.
    stderr: Option<pipe::Receiver>,
}

impl Streams {
    pub fn open(fifos: &Fifos, tty: bool) -> Result<Streams> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |e| Error::io(format!("opening {path}"), e)
        };
        Ok(Streams {
            // Read-write, so opening does not wait for the shim's reader.
            stdin: pipe::OpenOptions::new()
                .read_write(true)
                .open_sender(&fifos.stdin)
                .map_err(io(&fifos.stdin))?,
            held_stdin: match tty {
                true => Some(
                    std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(&fifos.stdin)
                        .map_err(io(&fifos.stdin))?,
                ),
                false => None,
            },
            stdout: pipe::OpenOptions::new()
                .open_receiver(&fifos.stdout)
                .map_err(io(&fifos.stdout))?,
            stderr: match tty {
                true => None,
                false => Some(
                    pipe::OpenOptions::new()
                        .open_receiver(&fifos.stderr)
                        .map_err(io(&fifos.stderr))?,
                ),
            },
        })
    }

    /// Copies `io`'s stdin in (when `interactive`) and the output out until the process has
    /// closed its output. At the end of stdin, `close_stdin` runs: the shim holds the FIFO open
    /// itself, so the process only sees end of file when told (containerd's CloseIO, as ctr does).
    pub async fn pump(
        self,
        io: ExecStreams,
        interactive: bool,
        close_stdin: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let stderr: Box<dyn tokio::io::AsyncRead + Unpin + Send> = match self.stderr {
            Some(stderr) => Box::new(stderr),
            None => Box::new(tokio::io::empty()),
        };
        let pumped = io
            .pump(interactive, self.stdin, self.stdout, stderr, close_stdin)
            .await;
        drop(self.held_stdin);
        pumped.map_err(|e| Error::io("copying exec output", e))
    }
}

/// The OCI process of an exec: the container's own process (user, capabilities, rlimits) with
/// the exec's command, env on top of the container's, and working directory; on a terminal of
/// `size` when it has one.
pub fn process(
    container_spec: &[u8],
    exec: &ExecSpec,
    size: Option<TerminalSize>,
) -> Result<oci_spec::runtime::Process> {
    let spec: oci_spec::runtime::Spec = serde_json::from_slice(container_spec)
        .map_err(|e| Error::invalid("the container's runtime spec", e.to_string()))?;
    let base = spec
        .process()
        .clone()
        .ok_or_else(|| Error::invalid("the container's runtime spec", "it has no process"))?;
    Ok(berth_oci::spec::exec_process(
        base,
        &exec.command,
        &exec.env,
        exec.working_dir.as_deref(),
        exec.tty,
        size,
    ))
}
