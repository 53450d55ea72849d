//! `berth` on a terminal the test owns: a pty whose slave is the process's controlling terminal
//! (so it gets SIGWINCH when the test resizes it) and whose master the test types into and
//! reads, as a user's terminal emulator would.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for text it expects before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

pub struct Terminal {
    master: File,
    child: Child,
    /// Everything the process wrote, for failure messages.
    pub transcript: String,
    /// How much of `transcript` an `expect` has already matched.
    seen: usize,
}

impl Terminal {
    /// Runs `command` with a new pty of `rows` x `cols` as its stdin, stdout and stderr.
    pub fn spawn(mut command: Command, rows: u16, cols: u16) -> Terminal {
        let (master, slave) = open_pty();
        let size = winsize(rows, cols);
        // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        let stdio = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
        command
            .stdin(stdio(&slave))
            .stdout(stdio(&slave))
            .stderr(stdio(&slave));
        // SAFETY: setsid and ioctl are async-signal-safe; the closure allocates nothing.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("running berth on a pty");
        drop(slave);
        // SAFETY: fcntl on a descriptor this function owns.
        unsafe {
            let flags = libc::fcntl(master.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(master.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        Terminal {
            master,
            child,
            transcript: String::new(),
            seen: 0,
        }
    }

    /// Types `text`.
    pub fn send(&mut self, text: &[u8]) {
        self.master.write_all(text).unwrap();
    }

    /// Resizes the terminal: the process on it gets SIGWINCH.
    pub fn resize(&mut self, rows: u16, cols: u16) {
        let size = winsize(rows, cols);
        // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
        unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    }

    /// Resizes the terminal, then runs `stty size` in the shell on it until the new size shows
    /// (the shell reads it when stty runs, after berth passed SIGWINCH on): at most 50 tries,
    /// and the caller asserts the size appeared.
    pub fn resize_and_ask(&mut self, rows: u16, cols: u16) {
        self.resize(rows, cols);
        let size = format!("{rows} {cols}");
        for _ in 0..50 {
            self.send(b"stty size\r");
            self.expect("# ");
            if self.transcript.contains(&size) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Reads until `needle` shows after what earlier calls matched; panics with the transcript
    /// when it does not within [`PATIENCE`].
    #[track_caller]
    pub fn expect(&mut self, needle: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(at) = self.transcript[self.seen..].find(needle) {
                self.seen += at + needle.len();
                return;
            }
            assert!(
                self.read_some(deadline),
                "{needle:?} never came; the terminal showed:\n{}",
                self.transcript
            );
        }
    }

    /// SIGKILLs the process (berth, not what it runs).
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits for the process to exit, reading what it still writes; its exit code.
    #[track_caller]
    pub fn wait(&mut self) -> i32 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while self.read_some(Instant::now()) {}
                return status.code().unwrap_or(-1);
            }
            // Short slices: another holder of the slave (a process berth started) keeps the
            // terminal open after berth itself has exited.
            let slice = (Instant::now() + Duration::from_millis(50)).min(deadline);
            if !self.read_some(slice) {
                assert!(
                    Instant::now() < deadline,
                    "berth never exited; its threads were waiting in {}; the terminal showed:\n{}",
                    waits_of(self.child.id()),
                    self.transcript
                );
            }
        }
    }

    /// Appends what the terminal has to the transcript, waiting for some until `deadline`;
    /// false when nothing came (or the process's side is gone).
    fn read_some(&mut self, deadline: Instant) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match self.master.read(&mut buf) {
                Ok(n) if n > 0 => {
                    self.transcript
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                    return true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // EIO: every descriptor of the slave side is closed.
                _ => return false,
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A new pty's master and slave, both close-on-exec from the start: tests run in parallel
/// threads, and a descriptor without it would leak into every process another test starts
/// meanwhile, keeping this terminal open after berth has exited.
fn open_pty() -> (File, OwnedFd) {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: posix_openpt returns a new descriptor or -1.
    let master = unsafe { libc::posix_openpt(flags) };
    assert!(
        master >= 0,
        "posix_openpt: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: the descriptor is new and owned by nothing else.
    let master = unsafe { File::from_raw_fd(master) };
    // SAFETY: unlockpt and TIOCGPTPEER act on the master this function owns; TIOCGPTPEER
    // returns a new descriptor for its slave or -1.
    let slave = unsafe {
        assert_eq!(libc::unlockpt(master.as_raw_fd()), 0, "unlockpt");
        libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags)
    };
    assert!(
        slave >= 0,
        "TIOCGPTPEER: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: as above, a new descriptor owned by nothing else.
    (master, unsafe { OwnedFd::from_raw_fd(slave) })
}

/// Where each thread of process `pid` sleeps in the kernel, for a failure message.
fn waits_of(pid: u32) -> String {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return "nothing: it is gone".into();
    };
    tasks
        .flatten()
        .map(|task| {
            let read = |file: &str| std::fs::read_to_string(task.path().join(file));
            let comm = read("comm").unwrap_or_default();
            let wchan = read("wchan").unwrap_or_default();
            format!("{}={}", comm.trim(), wchan.trim())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn winsize(rows: u16, cols: u16) -> libc::winsize {
    libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}
