//! Attaching to a running native container: its supervisor listens on a unix socket of the
//! container's (`<run-dir>/native/attach/`, owner-only), sends every attached client the
//! output it copies from then on, one frame per chunk (`[stream][length: u32 BE][bytes]`,
//! stream 1 stdout, 2 stderr), and writes what a client sends into the container's stdin when
//! it was created with one open (`stdin-open`; with `stdin-once` the first client to finish
//! closes it). A client that cannot keep up is let go rather than stall the container.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use berth_core::{AttachStdin, Error, ExecStreams, LogStream, Result, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The attach socket of container `id` (short enough for a socket path under a deep run dir).
pub fn socket_path(store: &Store, id: &str) -> PathBuf {
    let short = &id[..id.len().min(24)];
    store
        .run_dir()
        .join("native")
        .join("attach")
        .join(format!("{short}.sock"))
}

fn stream_byte(stream: LogStream) -> u8 {
    match stream {
        LogStream::Stdout => 1,
        LogStream::Stderr => 2,
    }
}

/// The supervisor's side: its listener, the attached clients and the container's stdin.
pub(crate) struct Attachments {
    listener: UnixListener,
    path: PathBuf,
    clients: Vec<UnixStream>,
    stdin: Option<File>,
    stdin_once: bool,
}

impl Attachments {
    /// Listens for clients of container `id`, which reads `stdin` (the write end of its
    /// stdin pipe) when it has one.
    pub fn listen(
        store: &Store,
        id: &str,
        stdin: Option<File>,
        stdin_once: bool,
    ) -> Result<Attachments> {
        use std::os::unix::fs::PermissionsExt;
        let path = socket_path(store, id);
        let dir = path.parent().expect("a socket path has a directory");
        berth_core::store::create_dir_all(dir)?;
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
            stdin,
            stdin_once,
        })
    }

    /// What the supervisor's poll waits on besides the output: the listener, then each client.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        std::iter::once(self.listener.as_fd())
            .chain(self.clients.iter().map(|c| c.as_fd()))
            .collect()
    }

    /// Handles what `ready` (one flag per [`fds`](Self::fds) entry) says is readable.
    pub fn on_ready(&mut self, ready: &[bool], buf: &mut [u8]) {
        if ready.first() == Some(&true) {
            while let Ok((client, _)) = self.listener.accept() {
                let _ = client.set_nonblocking(true);
                self.clients.push(client);
            }
        }
        let mut gone = Vec::new();
        for (i, client) in self.clients.iter_mut().enumerate() {
            if ready.get(i + 1) != Some(&true) {
                continue;
            }
            match client.read(buf) {
                Ok(0) => gone.push(i),
                Ok(n) => {
                    if let Some(stdin) = &mut self.stdin
                        && stdin.write_all(&buf[..n]).is_err()
                    {
                        self.stdin = None;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => gone.push(i),
            }
        }
        for i in gone.into_iter().rev() {
            self.clients.remove(i);
            if self.stdin_once {
                self.stdin = None; // closed: the container reads end of file
            }
        }
    }

    /// Sends a chunk of output to every client; one whose socket is full is let go.
    pub fn broadcast(&mut self, stream: LogStream, data: &[u8]) {
        if self.clients.is_empty() {
            return;
        }
        let mut frame = Vec::with_capacity(data.len() + 5);
        frame.push(stream_byte(stream));
        frame.extend_from_slice(&(data.len() as u32).to_be_bytes());
        frame.extend_from_slice(data);
        self.clients.retain_mut(|client| {
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
    }
}

impl Drop for Attachments {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The client's side: `io`'s stdin into the container (as `stdin` says), its output into
/// `io`'s stdout and stderr, until the container's output ends or a detach.
pub async fn attach(path: PathBuf, io: ExecStreams, stdin_mode: AttachStdin) -> Result<()> {
    let socket = tokio::net::UnixStream::connect(&path)
        .await
        .map_err(|e| Error::io(format!("attaching through {}", path.display()), e))?;
    let (mut from, mut to) = socket.into_split();
    let ExecStreams {
        mut stdin,
        mut stdout,
        mut stderr,
    } = io;
    let output = async move {
        let mut header = [0u8; 5];
        loop {
            if from.read_exact(&mut header).await.is_err() {
                return Ok::<(), std::io::Error>(());
            }
            let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
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
        if stdin_mode == AttachStdin::Off {
            return std::future::pending::<()>().await;
        }
        let _ = tokio::io::copy(&mut stdin, &mut to).await;
        if stdin_mode == AttachStdin::UntilEnd {
            let _ = to.shutdown().await;
            return;
        }
        // The socket's write half stays open: closing it would read as this client leaving.
        std::future::pending::<()>().await
    };
    tokio::select! {
        done = output => done.map_err(|e| Error::io("copying attached output", e)),
        () = input => Ok(()),
    }
}
