//! The user's side of a container on a terminal (`run -t`, `start -a`, `attach`): this terminal
//! in raw mode, its size sent first and on every SIGWINCH, and the detach keys (docker's
//! `ctrl-p,ctrl-q` unless `--detach-keys` says otherwise) that leave the container running.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use berth_core::terminal::RawMode;
use berth_core::{AttachStdin, Error, ExecStreams};
use berth_engine::{ContainerRecord, Engine};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::signal::unix::{SignalKind, signal};

/// docker's default.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// Parses docker's `--detach-keys`: comma-separated `ctrl-<letter>` (or `ctrl-@`, `ctrl-[`,
/// ...) and single characters. An empty string turns detaching off.
pub fn parse_detach_keys(text: &str) -> berth_core::Result<Vec<u8>> {
    let bad = |key: &str| {
        Error::invalid(format!("detach key {key:?}"), "not a key")
            .with_hint("use keys like ctrl-p,ctrl-q or ctrl-x,a (docker's --detach-keys)")
    };
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|key| {
            if let Some(rest) = key.strip_prefix("ctrl-") {
                match rest.as_bytes() {
                    [c @ b'a'..=b'z'] => Ok(c - b'a' + 1),
                    [c @ b'@'..=b'_'] => Ok(c - b'@'),
                    _ => Err(bad(key)),
                }
            } else {
                match key.as_bytes() {
                    [c] if c.is_ascii_graphic() => Ok(*c),
                    _ => Err(bad(key)),
                }
            }
        })
        .collect()
}

/// docker's rule: keys for a terminal (`-i` with `-t`) must come from one.
pub fn stdin_must_be_a_terminal(what: &str) -> berth_core::Result<()> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        return Ok(());
    }
    Err(Error::invalid(
        what,
        "-i with -t needs stdin to be a terminal, and it is not a terminal",
    )
    .with_hint("drop -t to pipe stdin, or run this from a terminal"))
}

/// How an attachment on a terminal ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The container's output ended: it is exiting.
    Exited,
    /// The user typed the detach keys; the container runs on.
    Detached,
}

/// Attaches this terminal to `record`'s (a container created with `tty`): raw mode, sizes,
/// detach keys.
pub async fn attach(
    engine: &Engine,
    record: &ContainerRecord,
    stdin_mode: AttachStdin,
    detach_keys: &[u8],
) -> berth_core::Result<Ended> {
    let stdin = std::io::stdin();
    let _raw = RawMode::enter(std::os::fd::AsFd::as_fd(&stdin));
    let detach = Arc::new(tokio::sync::Notify::new());
    let reader = DetachKeys::new(tokio::io::stdin(), detach_keys, detach.clone());
    let io = ExecStreams {
        stdin: Box::new(reader),
        stdout: Box::new(tokio::io::stdout()),
        stderr: Box::new(tokio::io::stderr()),
        resize: Some(berth_core::terminal::follow_user_size()),
    };
    // Raw mode makes ctrl-c a key for the container; a SIGTERM to berth is passed on to it.
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| Error::io("catching SIGTERM", e))?;
    let attached = engine.attach(record, io, stdin_mode);
    tokio::pin!(attached);
    loop {
        tokio::select! {
            done = &mut attached => break done.map(|()| Ended::Exited),
            () = detach.notified() => break Ok(Ended::Detached),
            _ = terminate.recv() => { let _ = engine.kill(record, libc::SIGTERM).await; }
        }
    }
}

/// Stdin that ends, and says so, when the user types the detach keys; keys that only start
/// the sequence are held back until the next one shows whether they were meant for it.
struct DetachKeys<R> {
    inner: R,
    keys: Vec<u8>,
    matched: usize,
    held: Vec<u8>,
    /// Output that did not fit the caller's buffer.
    unsent: Vec<u8>,
    detached: Arc<AtomicBool>,
    detach: Arc<tokio::sync::Notify>,
}

impl<R: AsyncRead + Unpin> AsyncRead for DetachKeys<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if !this.unsent.is_empty() {
            let n = this.unsent.len().min(buf.remaining());
            buf.put_slice(&this.unsent[..n]);
            this.unsent.drain(..n);
            return Poll::Ready(Ok(()));
        }
        if this.detached.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(()));
        }
        let mut chunk = vec![0u8; buf.remaining().max(1)];
        loop {
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            let input = read.filled();
            if input.is_empty() {
                // The end of stdin: what was held back was typed after all.
                let held = std::mem::take(&mut this.held);
                let n = held.len().min(buf.remaining());
                buf.put_slice(&held[..n]);
                this.unsent.extend_from_slice(&held[n..]);
                return Poll::Ready(Ok(()));
            }
            let out = this.scan(input);
            // All of it may be the start of the detach sequence: read on.
            if !out.is_empty() || this.detached.load(Ordering::SeqCst) {
                let n = out.len().min(buf.remaining());
                buf.put_slice(&out[..n]);
                this.unsent.extend_from_slice(&out[n..]);
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl<R> DetachKeys<R> {
    /// Reads `inner`; `detach` is told when `keys` (none: never) have been typed.
    fn new(inner: R, keys: &[u8], detach: Arc<tokio::sync::Notify>) -> Self {
        DetachKeys {
            inner,
            keys: keys.to_vec(),
            matched: 0,
            held: Vec::new(),
            unsent: Vec::new(),
            detached: Arc::new(AtomicBool::new(false)),
            detach,
        }
    }

    /// What of `input` goes to the container (held-back keys included once they are known not
    /// to be the sequence); stops at the end of the sequence.
    fn scan(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() + self.held.len());
        for &byte in input {
            if self.keys.is_empty() {
                out.push(byte);
                continue;
            }
            if byte == self.keys[self.matched] {
                self.matched += 1;
                self.held.push(byte);
                if self.matched == self.keys.len() {
                    self.detached.store(true, Ordering::SeqCst);
                    self.detach.notify_one();
                    self.held.clear();
                    break;
                }
            } else {
                out.append(&mut self.held);
                self.matched = 0;
                if byte == self.keys[0] {
                    self.matched = 1;
                    self.held.push(byte);
                } else {
                    out.push(byte);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn detach_keys_parse_as_docker_reads_them() {
        assert_eq!(
            parse_detach_keys(DEFAULT_DETACH_KEYS).unwrap(),
            [0x10, 0x11]
        );
        assert_eq!(parse_detach_keys("ctrl-x,a").unwrap(), [0x18, b'a']);
        assert_eq!(parse_detach_keys("ctrl-@,ctrl-[").unwrap(), [0, 0x1b]);
        assert!(parse_detach_keys("").unwrap().is_empty());
        assert!(parse_detach_keys("ctrl-").is_err());
        assert!(parse_detach_keys("shift-a").is_err());
    }

    async fn through_detach_keys(input: &[u8]) -> (Vec<u8>, bool) {
        let detach = Arc::new(tokio::sync::Notify::new());
        let mut reader = DetachKeys::new(input, &[0x10, 0x11], detach);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).await.unwrap();
        (out, reader.detached.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn the_detach_sequence_ends_stdin_and_nothing_else_does() {
        assert_eq!(
            through_detach_keys(b"ls\r").await,
            (b"ls\r".to_vec(), false)
        );
        assert_eq!(
            through_detach_keys(b"ab\x10\x11cd").await,
            (b"ab".to_vec(), true)
        );
        // A lone ctrl-p is the user's, sent once the next key shows it.
        assert_eq!(
            through_detach_keys(b"\x10x\x10\x10\x11").await,
            (b"\x10x\x10".to_vec(), true)
        );
        assert_eq!(
            through_detach_keys(b"a\x10").await,
            (b"a\x10".to_vec(), false)
        );
    }
}
