//! One error vocabulary for every berth library.
//!
//! Each variant says what failed, on which object, and (where there is one) what to do about it.
//! The CLI maps [`ErrorKind`] to a documented exit code, so scripts can tell a policy denial from a
//! missing image without parsing text.

use std::fmt;
use std::path::PathBuf;

/// Result alias used across berth's libraries.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Appends `" (hint)"` when there is a hint, so messages read naturally with or without one.
struct Hint<'a>(&'a str);

impl fmt::Display for Hint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, " ({})", self.0)
        }
    }
}

/// What kind of thing an error is about: a closed set, so every message names its object the
/// same way and code can match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Object {
    Container,
    Image,
    ImageArchive,
    /// What a containerd image record points at (its index or manifest).
    ImageTarget,
    /// An image's layers as unpacked for a snapshotter.
    UnpackedLayers,
    ImagePlatform,
    RootfsDirectory,
    Backend,
    Plugin,
    Volume,
    Package,
    Snapshot,
    /// A container version (`berth commit`).
    Version,
    MountSource,
    User,
    Group,
    /// A blob in a content store.
    Content,
    Network,
    Pod,
    /// A path inside a container (`berth cp`).
    Path,
}

impl Object {
    pub fn as_str(self) -> &'static str {
        match self {
            Object::Container => "container",
            Object::Image => "image",
            Object::ImageArchive => "image archive",
            Object::ImageTarget => "image target",
            Object::UnpackedLayers => "unpacked image layers",
            Object::ImagePlatform => "image platform",
            Object::RootfsDirectory => "root filesystem directory",
            Object::Backend => "backend",
            Object::Plugin => "plugin",
            Object::Volume => "volume",
            Object::Package => "package",
            Object::Snapshot => "snapshot",
            Object::Version => "version",
            Object::MountSource => "mount source",
            Object::User => "user",
            Object::Group => "group",
            Object::Content => "content",
            Object::Network => "network",
            Object::Pod => "pod",
            Object::Path => "path",
        }
    }
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a plugin call failed, as opposed to the plugin answering "no".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginFailure {
    /// The component could not be read, compiled, verified or linked.
    Load,
    /// The guest trapped (a panic, `unreachable`, a host bug surfaced as a trap).
    Trap,
    /// The call ran past `timeout-ms` and was interrupted.
    Timeout,
    /// The guest tried to grow its memory past `memory-mb`.
    OutOfMemory,
    /// The plugin answered something the host cannot act on (e.g. a backend that is not a
    /// candidate): its contract is broken, whatever the user asked.
    BadAnswer,
}

impl fmt::Display for PluginFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PluginFailure::Load => "load error",
            PluginFailure::Trap => "trap",
            PluginFailure::Timeout => "timeout",
            PluginFailure::OutOfMemory => "out of memory",
            PluginFailure::BadAnswer => "bad answer",
        })
    }
}

/// Every failure a berth library can report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{kind} {name:?} not found{}", Hint(hint))]
    NotFound {
        kind: Object,
        name: String,
        hint: String,
    },

    #[error("{kind} {name:?} already exists{}", Hint(hint))]
    AlreadyExists {
        kind: Object,
        name: String,
        hint: String,
    },

    #[error("invalid {what}: {reason}{}", Hint(hint))]
    Invalid {
        what: String,
        reason: String,
        hint: String,
    },

    #[error("{what}: {reason}{}", Hint(hint))]
    Conflict {
        what: String,
        reason: String,
        hint: String,
    },

    #[error("backend {backend:?} does not support {operation}{}", Hint(hint))]
    NotSupported {
        backend: String,
        operation: String,
        hint: String,
    },

    /// A daemon or server berth needs does not answer.
    #[error("{service} is unreachable at {endpoint}: {reason}{}", Hint(hint))]
    Unavailable {
        /// What is unreachable, e.g. `backend "docker"`.
        service: String,
        endpoint: String,
        reason: String,
        hint: String,
    },

    #[error("backend {backend:?} failed to {operation} {object}: {message}")]
    Backend {
        backend: String,
        operation: &'static str,
        object: String,
        message: String,
        /// The client library's own error, kept so its causes are printed, not lost.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// A CNI plugin refused or failed; its own message, as it gave it.
    #[error(
        "network {network:?}: CNI plugin {plugin:?} failed to {command} container {container}: {message}"
    )]
    NetworkPlugin {
        network: String,
        plugin: String,
        command: &'static str,
        container: String,
        message: String,
    },

    /// The container's command does not exist in its image (docker's exit 127).
    #[error(
        "container {container} cannot start: {message} (check the command, or PATH in the image)"
    )]
    CommandNotFound { container: String, message: String },

    #[error("{operation} of {object} timed out after {seconds}s{}", Hint(hint))]
    Timeout {
        operation: &'static str,
        object: String,
        seconds: u64,
        hint: String,
    },

    #[error("denied by plugin {plugin:?} at {hook}: {reason}")]
    Denied {
        plugin: String,
        hook: String,
        reason: String,
    },

    /// A registry refused who berth pulled or logged in as (docker's "unauthorized").
    #[error("registry {registry} refused {who}: {reason}{}", Hint(hint))]
    Unauthorized {
        registry: String,
        /// `the credentials for alice`, `an anonymous pull`.
        who: String,
        reason: String,
        hint: String,
    },

    #[error("plugin {plugin:?} failed at {hook} ({failure}): {message}")]
    PluginFailed {
        plugin: String,
        hook: String,
        failure: PluginFailure,
        message: String,
    },

    #[error("{path}: {message}")]
    Config { path: String, message: String },

    #[error("corrupt {what} at {}: {message}{}", path.display(), Hint(hint))]
    Corrupt {
        what: String,
        path: PathBuf,
        message: String,
        hint: String,
    },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// The coarse class of an error; the CLI turns it into an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    Invalid,
    Conflict,
    NotSupported,
    Unavailable,
    Backend,
    CommandNotFound,
    Timeout,
    Denied,
    PluginFailed,
    Config,
    Corrupt,
    /// The disk is full (or over quota) or read-only: nothing berth can fix by retrying.
    Storage,
    Io,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::Invalid { .. } => ErrorKind::Invalid,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::NotSupported { .. } => ErrorKind::NotSupported,
            Error::Unavailable { .. } => ErrorKind::Unavailable,
            Error::Backend { .. } | Error::NetworkPlugin { .. } => ErrorKind::Backend,
            Error::CommandNotFound { .. } => ErrorKind::CommandNotFound,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Denied { .. } | Error::Unauthorized { .. } => ErrorKind::Denied,
            Error::PluginFailed { .. } => ErrorKind::PluginFailed,
            Error::Config { .. } => ErrorKind::Config,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::Io { source, .. } if is_storage(source) => ErrorKind::Storage,
            Error::Io { .. } => ErrorKind::Io,
        }
    }

    pub fn not_found(kind: Object, name: impl Into<String>) -> Self {
        Error::NotFound {
            kind,
            name: name.into(),
            hint: String::new(),
        }
    }

    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            reason: reason.into(),
            hint: String::new(),
        }
    }

    pub fn conflict(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Conflict {
            what: what.into(),
            reason: reason.into(),
            hint: String::new(),
        }
    }

    pub fn backend(
        backend: impl Into<String>,
        operation: &'static str,
        object: impl Into<String>,
        message: impl fmt::Display,
    ) -> Self {
        Error::Backend {
            backend: backend.into(),
            operation,
            object: object.into(),
            message: message.to_string(),
            source: None,
        }
    }

    /// [`Error::backend`] for a failure a client library reported as an error value: its text
    /// is the message, and the error itself stays as the source.
    pub fn backend_caused(
        backend: impl Into<String>,
        operation: &'static str,
        object: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Backend {
            backend: backend.into(),
            operation,
            object: object.into(),
            message: cause.to_string(),
            source: Some(Box::new(cause)),
        }
    }

    /// An exec killed because it outlived its timeout.
    pub fn exec_timeout(container: &str, limit: std::time::Duration) -> Self {
        Error::Timeout {
            operation: "exec",
            object: format!("container {container}"),
            seconds: limit.as_secs(),
            hint: "the process was killed; give it longer, or make it end sooner".into(),
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Attaches advice to variants that carry a hint; others are returned unchanged.
    pub fn with_hint(mut self, advice: impl Into<String>) -> Self {
        match &mut self {
            Error::NotFound { hint, .. }
            | Error::AlreadyExists { hint, .. }
            | Error::Invalid { hint, .. }
            | Error::Conflict { hint, .. }
            | Error::Unavailable { hint, .. }
            | Error::Timeout { hint, .. }
            | Error::NotSupported { hint, .. }
            | Error::Corrupt { hint, .. }
            | Error::Unauthorized { hint, .. } => *hint = advice.into(),
            _ => {}
        }
        self
    }
}

/// Whether an I/O error is about the storage itself (full, over quota, read-only) rather than
/// the operation: the user's fix is to free space or remount, so it gets its own exit code.
/// By kind as well as errno, since wrappers (the tar crate's) keep the kind but not the errno.
pub fn is_storage(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{QuotaExceeded, ReadOnlyFilesystem, StorageFull};
    matches!(
        error.kind(),
        StorageFull | ReadOnlyFilesystem | QuotaExceeded
    ) || matches!(
        error.raw_os_error(),
        Some(libc::ENOSPC | libc::EDQUOT | libc::EROFS)
    )
}

/// Adds a "what were we doing" context to `std::io::Error`s.
pub trait IoContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::io(what(), source))
    }
}

impl<T> IoContext<T> for nix::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|errno| Error::io(what(), std::io::Error::from(errno)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_object_and_the_fix() {
        let e = Error::Unavailable {
            service: "backend \"docker\"".into(),
            endpoint: "unix:///var/run/docker.sock".into(),
            reason: "connection refused".into(),
            hint: "is dockerd running? (set [backends.docker].socket)".into(),
        };
        assert_eq!(
            e.to_string(),
            "backend \"docker\" is unreachable at unix:///var/run/docker.sock: connection refused \
             (is dockerd running? (set [backends.docker].socket))"
        );
        let e = Error::not_found(crate::error::Object::Image, "busybox")
            .with_hint("import it with `berth image import`");
        assert_eq!(
            e.to_string(),
            "image \"busybox\" not found (import it with `berth image import`)"
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }
}
