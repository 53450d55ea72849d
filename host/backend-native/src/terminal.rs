//! Terminals for native containers and exec'd processes (`-t`).
//!
//! As runc does, libcontainer makes the pty inside the container (from the container's own
//! devpts, after pivot_root) and sends its master over a *console socket* the caller listens
//! on; berth's supervisor (for a container) or exec helper (for an exec) receives it here and
//! then owns the master: output is read from it, input and window sizes go into it.

use std::fs::File;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use berth_core::{Error, Result, Store};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

/// A console socket that libcontainer connects to while it builds the container, and the one
/// pty master it sends.
pub(crate) struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ConsoleSocket {
    /// Listens at `<run-dir>/native/console/<name>.sock`.
    pub fn listen(store: &Store, name: &str) -> Result<ConsoleSocket> {
        let dir = store.run_dir().join("native").join("console");
        berth_core::store::create_dir_all(&dir)?;
        let short = &name[..name.len().min(32)];
        let path = dir.join(format!("{short}.sock"));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .map_err(|e| Error::io(format!("listening on {}", path.display()), e))?;
        Ok(ConsoleSocket { listener, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The master libcontainer sent. Called after its build returned: by then the container's
    /// init (or the exec'd process) has made the pty and sent it, so this does not wait.
    pub fn receive_master(&self) -> Result<File> {
        let failed =
            |what: String| Error::backend("native", "set up", "the container's terminal", what);
        let (connection, _) = self
            .listener
            .accept()
            .map_err(|e| failed(format!("accept on {}: {e}", self.path.display())))?;
        let mut name = [0u8; 64];
        let mut iov = [IoSliceMut::new(&mut name)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let message = recvmsg::<()>(
            connection.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| failed(format!("recvmsg: {e}")))?;
        for cmsg in message
            .cmsgs()
            .map_err(|e| failed(format!("control message: {e}")))?
        {
            if let ControlMessageOwned::ScmRights(fds) = cmsg
                && let Some(&fd) = fds.first()
            {
                // SAFETY: SCM_RIGHTS gave this process a new descriptor that nothing else owns.
                return Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
        Err(failed("no terminal came over the console socket".into()))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
