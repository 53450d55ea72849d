//! The user's terminal and a pty's size: what the CLI (`run -it`, `attach`) and the native
//! exec helper both do to the terminal they are given.

use std::os::fd::AsRawFd;

use nix::sys::termios::{self, SetArg, Termios};

use crate::TerminalSize;

/// Sets the terminal behind `fd` (a pty master) to `size`; the process on it gets SIGWINCH.
pub fn set_size(fd: &impl AsRawFd, size: TerminalSize) {
    let winsize = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &winsize) };
}

/// The size of the terminal on `fd`, when it is one.
pub fn size_of(fd: &impl AsRawFd) -> Option<TerminalSize> {
    let mut winsize: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize to a valid pointer.
    let ok = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut winsize) } == 0;
    (ok && winsize.ws_row > 0).then_some(TerminalSize {
        rows: winsize.ws_row,
        cols: winsize.ws_col,
    })
}

/// The size of this process's terminal: its stdin's, or its stdout's when stdin is not one
/// (`-t` without `-i`).
pub fn user_size() -> Option<TerminalSize> {
    size_of(&std::io::stdin()).or_else(|| size_of(&std::io::stdout()))
}

/// This process's terminal size ([`user_size`]): first, then at every SIGWINCH. The task
/// that follows it ends at the first change after the receiver is dropped.
pub fn follow_user_size() -> crate::Resizes {
    let (sizes, resizes) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut winch) = signal(SignalKind::window_change()) else {
            return;
        };
        loop {
            if let Some(size) = user_size()
                && sizes.send(size).await.is_err()
            {
                return;
            }
            if winch.recv().await.is_none() {
                return;
            }
        }
    });
    resizes
}

/// The user's terminal in raw mode (keys go to the container as typed, ctrl-c included)
/// until this is dropped, which puts it back as it was.
pub struct RawMode {
    fd: std::os::fd::RawFd,
    saved: Termios,
}

impl RawMode {
    /// `None` when `fd` is not a terminal.
    pub fn enter(fd: std::os::fd::BorrowedFd<'_>) -> Option<RawMode> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode {
            fd: fd.as_raw_fd(),
            saved,
        })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: the descriptor outlives this guard (it is the process's stdin).
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd) };
        let _ = termios::tcsetattr(fd, SetArg::TCSANOW, &self.saved);
    }
}
