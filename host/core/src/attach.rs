//! Attaching to a running container: the process that copies its output (the native
//! supervisor, the containerd logger) listens on a unix socket of the container's
//! (owner-only directory), sends every attached client the output it copies from then on, one frame per chunk (`[stream][length: u32 BE][bytes]`,
//! stream 1 stdout, 2 stderr), and takes [`Input`] frames from each client: stdin, written into
//! the container's when it was created with one open (`stdin-open`; with `stdin-once` the first
//! client to finish closes it, unless it is on a terminal), and window sizes for a container on a terminal. A terminal's
//! output before the first client attaches is kept for it (the first prompt of `run -it`). A
//! client that cannot keep up is let go rather than stall the container.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::logs::{CriLog, encode};
use crate::{AttachStdin, Error, ExecStreams, LogStream, Result, Store, TerminalSize};

/// The attach socket of container `id` of `backend` (short enough for a socket path under a
/// deep run dir).
pub fn socket_path(store: &Store, backend: &str, id: &str) -> PathBuf {
    let short = &id[..id.len().min(24)];
    store
        .run_dir()
        .join(backend)
        .join("attach")
        .join(format!("{short}.sock"))
}

/// Removes `backend`'s attach sockets of containers other than `live` (their server was
/// killed; one that ends removes its own); what it removed, for `gc`.
pub fn sweep_sockets(
    store: &Store,
    backend: &str,
    live: impl IntoIterator<Item = impl AsRef<str>>,
    dry_run: bool,
) -> Vec<String> {
    let live: Vec<_> = live.into_iter().collect();
    let mut done = Vec::new();
    let dir = socket_path(store, backend, "");
    for entry in std::fs::read_dir(dir.parent().expect("a socket path has a directory"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(short) = name.strip_suffix(".sock") else {
            continue;
        };
        // A socket is named by its container id's first characters.
        if live.iter().any(|id| id.as_ref().starts_with(short)) {
            continue;
        }
        done.push(format!("attach socket of removed container {short}"));
        if !dry_run {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    done
}

fn stream_byte(stream: LogStream) -> u8 {
    match stream {
        LogStream::Stdout => 1,
        LogStream::Stderr => 2,
    }
}

/// What a client sends, one frame each: `[kind][length: u32 BE][bytes]`, kind 0 stdin, 1 a
/// window size (rows, cols: u16 BE each). The native exec helper reads the same frames on its
/// stdin when its caller has a terminal of its own to size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin(Vec<u8>),
    Resize(TerminalSize),
}

/// The largest frame a client may send; a bigger one ends its attachment.
const MAX_INPUT_FRAME: usize = 1 << 20;

impl Input {
    pub fn encode(&self) -> Vec<u8> {
        let (kind, body) = match self {
            Input::Stdin(data) => (0u8, data.clone()),
            Input::Resize(size) => (
                1,
                [size.rows.to_be_bytes(), size.cols.to_be_bytes()].concat(),
            ),
        };
        let mut frame = Vec::with_capacity(body.len() + 5);
        frame.push(kind);
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
        frame.extend_from_slice(&body);
        frame
    }
}

/// The body length a frame's `[kind][u32 BE length]` header gives.
fn frame_len(header: &[u8]) -> usize {
    u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize
}

/// Cuts a client's byte stream into [`Input`]s, across reads.
#[derive(Debug, Default)]
pub struct InputFrames {
    pending: Vec<u8>,
}

/// A client sent something that is not an [`Input`] frame.
#[derive(Debug, PartialEq, Eq)]
pub struct BadFrame;

impl InputFrames {
    /// The frames `data` completes, in order.
    pub fn push(&mut self, data: &[u8]) -> std::result::Result<Vec<Input>, BadFrame> {
        self.pending.extend_from_slice(data);
        let mut inputs = Vec::new();
        while let Some(header) = self.pending.get(..5) {
            let len = frame_len(header);
            if len > MAX_INPUT_FRAME {
                return Err(BadFrame);
            }
            let Some(body) = self.pending.get(5..5 + len) else {
                break;
            };
            inputs.push(match (header[0], body) {
                (0, data) => Input::Stdin(data.to_vec()),
                (1, [r0, r1, c0, c1]) => Input::Resize(TerminalSize {
                    rows: u16::from_be_bytes([*r0, *r1]),
                    cols: u16::from_be_bytes([*c0, *c1]),
                }),
                _ => return Err(BadFrame),
            });
            self.pending.drain(..5 + len);
        }
        Ok(inputs)
    }
}

/// A terminal's output kept for the first client, at most this much (the latest).
const BACKLOG_LIMIT: usize = 64 * 1024;

/// The serving side: its listener, the attached clients, the container's stdin and, on a
/// terminal, its pty master.
pub struct Attachments {
    listener: UnixListener,
    path: PathBuf,
    clients: Vec<(UnixStream, InputFrames)>,
    stdin: Option<File>,
    stdin_once: bool,
    pty: Option<File>,
    /// Output no client has seen yet; `None` once one has attached (or without a terminal).
    backlog: Option<Vec<u8>>,
}

/// What an [`Attachments`] serves besides the output.
pub struct Served {
    /// The container's stdin (the write end of its pipe, a FIFO, or its pty master), when it
    /// was created with one open.
    pub stdin: Option<File>,
    /// The first client to finish closes stdin (`stdin-once`; never on a terminal).
    pub stdin_once: bool,
    /// The container is on a terminal: its output before the first client is kept for it,
    /// and its stdin outlives a client that leaves (detach keys), as on docker.
    pub tty: bool,
    /// The pty master that clients' window sizes go to, when this process holds it.
    pub pty: Option<File>,
}

impl Attachments {
    /// Listens for clients at `path`.
    pub fn listen(path: PathBuf, served: Served) -> Result<Attachments> {
        use std::os::unix::fs::PermissionsExt;
        let dir = path.parent().expect("a socket path has a directory");
        crate::store::create_dir_all(dir)?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .map_err(|e| Error::io(format!("listening on {}", path.display()), e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("making the attach socket non-blocking", e))?;
        Ok(Attachments {
            listener,
            path,
            clients: Vec::new(),
            stdin: served.stdin,
            stdin_once: served.stdin_once && !served.tty,
            backlog: served.tty.then(Vec::new),
            pty: served.pty,
        })
    }

    /// What the supervisor's poll waits on besides the output: the listener, then each client.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        std::iter::once(self.listener.as_fd())
            .chain(self.clients.iter().map(|(c, _)| c.as_fd()))
            .collect()
    }

    /// Handles what `ready` (one flag per [`fds`](Self::fds) entry) says is readable.
    pub fn on_ready(&mut self, ready: &[bool], buf: &mut [u8]) {
        if ready.first() == Some(&true) {
            while let Ok((client, _)) = self.listener.accept() {
                let _ = client.set_nonblocking(true);
                self.clients.push((client, InputFrames::default()));
                if let Some(backlog) = self.backlog.take()
                    && !backlog.is_empty()
                {
                    self.broadcast(LogStream::Stdout, &backlog);
                }
            }
        }
        let mut gone = Vec::new();
        for (i, (client, frames)) in self.clients.iter_mut().enumerate() {
            if ready.get(i + 1) != Some(&true) {
                continue;
            }
            match client.read(buf) {
                Ok(0) => gone.push(i),
                Ok(n) => match frames.push(&buf[..n]) {
                    Ok(inputs) => {
                        for input in inputs {
                            match input {
                                Input::Stdin(data) => {
                                    if let Some(stdin) = &mut self.stdin
                                        && stdin.write_all(&data).is_err()
                                    {
                                        self.stdin = None;
                                    }
                                }
                                Input::Resize(size) => {
                                    if let Some(pty) = &self.pty {
                                        crate::terminal::set_size(pty, size);
                                    }
                                }
                            }
                        }
                    }
                    Err(BadFrame) => gone.push(i),
                },
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => gone.push(i),
            }
        }
        for i in gone.into_iter().rev() {
            self.clients.remove(i);
            self.client_left();
        }
    }

    fn client_left(&mut self) {
        if self.stdin_once {
            self.stdin = None; // closed: the container reads end of file
        }
    }

    /// Sends a chunk of output to every client; one whose socket is full is let go.
    pub fn broadcast(&mut self, stream: LogStream, data: &[u8]) {
        if let Some(backlog) = &mut self.backlog {
            backlog.extend_from_slice(data);
            let over = backlog.len().saturating_sub(BACKLOG_LIMIT);
            backlog.drain(..over);
        }
        if self.clients.is_empty() {
            return;
        }
        let mut frame = Vec::with_capacity(data.len() + 5);
        frame.push(stream_byte(stream));
        frame.extend_from_slice(&(data.len() as u32).to_be_bytes());
        frame.extend_from_slice(data);
        let before = self.clients.len();
        self.clients.retain_mut(|(client, _)| {
            let mut sent = 0;
            while sent < frame.len() {
                match client.write(&frame[sent..]) {
                    Ok(0) => return false,
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => return false,
                }
            }
            true
        });
        // A client that closed its socket before its end of stdin was read left all the same.
        if self.clients.len() < before {
            self.client_left();
        }
    }
}

impl Drop for Attachments {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Copies the container's output (`streams`: both pipes, or the one of its terminal) into
/// `log` (and the CRI's, when asked for, and to attached clients) until each reaches end of
/// file (every process of the container has exited or closed it); meanwhile serves the
/// attach socket.
pub fn pump(
    mut streams: Vec<(File, LogStream)>,
    mut log: File,
    mut cri_log: Option<CriLog>,
    mut attachments: Option<&mut Attachments>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    while !streams.is_empty() {
        let (ready, attach_ready): (Vec<bool>, Vec<bool>) = {
            let mut fds: Vec<PollFd> = streams
                .iter()
                .map(|(f, _)| PollFd::new(f.as_fd(), PollFlags::POLLIN))
                .chain(
                    attachments
                        .iter()
                        .flat_map(|a| a.fds())
                        .map(|fd| PollFd::new(fd, PollFlags::POLLIN)),
                )
                .collect();
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {
                    let flags: Vec<bool> = fds
                        .iter()
                        .map(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
                        .collect();
                    let (outputs, attach) = flags.split_at(streams.len());
                    (outputs.to_vec(), attach.to_vec())
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
        };
        if let Some(attachments) = attachments.as_deref_mut() {
            attachments.on_ready(&attach_ready, &mut buf);
        }
        let mut closed = Vec::new();
        for (i, is_ready) in ready.into_iter().enumerate() {
            if !is_ready {
                continue;
            }
            let (file, stream) = &mut streams[i];
            match file.read(&mut buf) {
                Ok(0) => closed.push(i),
                Ok(n) => {
                    let _ = log.write_all(&encode(*stream, &buf[..n]));
                    if let Some(cri_log) = &mut cri_log {
                        cri_log.write(*stream, &buf[..n]);
                    }
                    if let Some(attachments) = attachments.as_deref_mut() {
                        attachments.broadcast(*stream, &buf[..n]);
                    }
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

/// The client's side: `io`'s stdin into the container (as `stdin` says) and its window sizes,
/// the container's output into `io`'s stdout and stderr, until that output ends or a detach.
pub async fn attach(path: PathBuf, io: ExecStreams, stdin_mode: AttachStdin) -> Result<()> {
    let socket = tokio::net::UnixStream::connect(&path)
        .await
        .map_err(|e| Error::io(format!("attaching through {}", path.display()), e))?;
    let (mut from, mut to) = socket.into_split();
    let ExecStreams {
        stdin,
        mut stdout,
        mut stderr,
        resize,
    } = io;
    let output = async move {
        let mut header = [0u8; 5];
        loop {
            if from.read_exact(&mut header).await.is_err() {
                return Ok::<(), std::io::Error>(());
            }
            let len = frame_len(&header);
            let mut data = vec![0u8; len];
            from.read_exact(&mut data).await?;
            match header[0] {
                2 => stderr.write_all(&data).await?,
                _ => stdout.write_all(&data).await?,
            }
            stdout.flush().await?;
            stderr.flush().await?;
        }
    };
    let input = async move {
        let mut resize = resize;
        if stdin_mode != AttachStdin::Off {
            let _ = send_input(Some(stdin), &mut resize, &mut to).await;
        }
        if stdin_mode == AttachStdin::UntilEnd {
            let _ = to.shutdown().await;
            return;
        }
        let _ = send_input(None, &mut resize, &mut to).await;
        // The socket's write half stays open: closing it would read as this client leaving.
        std::future::pending::<()>().await
    };
    tokio::select! {
        done = output => done.map_err(|e| Error::io("copying attached output", e)),
        () = input => Ok(()),
    }
}

/// Sends `stdin` and the window sizes from `resize` as [`Input`] frames, until stdin ends
/// (given one) or no more sizes come (without).
pub async fn send_input(
    mut stdin: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>,
    resize: &mut Option<crate::Resizes>,
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 32 * 1024];
    let until_stdin_ends = stdin.is_some();
    while stdin.is_some() || (!until_stdin_ends && resize.is_some()) {
        let frame = tokio::select! {
            // A size given before keys applies before them.
            biased;
            size = async { resize.as_mut().expect("guarded").recv().await }, if resize.is_some() => {
                match size {
                    Some(size) => Input::Resize(size),
                    None => { *resize = None; continue; }
                }
            }
            read = async { stdin.as_mut().expect("guarded").read(&mut buf).await }, if stdin.is_some() => {
                match read {
                    Ok(0) | Err(_) => { stdin = None; continue; }
                    Ok(n) => Input::Stdin(buf[..n].to_vec()),
                }
            }
        };
        to.write_all(&frame.encode()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_frames_survive_any_split() {
        let inputs = [
            Input::Stdin(b"echo hi\n".to_vec()),
            Input::Resize(TerminalSize {
                rows: 40,
                cols: 132,
            }),
            Input::Stdin(Vec::new()),
        ];
        let bytes: Vec<u8> = inputs.iter().flat_map(Input::encode).collect();
        for cut in 0..bytes.len() {
            let mut frames = InputFrames::default();
            let mut got = frames.push(&bytes[..cut]).unwrap();
            got.extend(frames.push(&bytes[cut..]).unwrap());
            assert_eq!(got, inputs, "cut at {cut}");
        }
    }

    #[test]
    fn a_client_sending_garbage_is_refused() {
        assert_eq!(
            InputFrames::default().push(&[9, 0, 0, 0, 1, 0]),
            Err(BadFrame)
        );
        let resize_too_short = [1, 0, 0, 0, 2, 0, 40];
        assert_eq!(
            InputFrames::default().push(&resize_too_short),
            Err(BadFrame)
        );
        let huge = [0, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(InputFrames::default().push(&huge), Err(BadFrame));
    }
}
