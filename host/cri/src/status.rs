//! berth's errors as gRPC statuses: the code a kubelet acts on, and berth's whole message (a
//! plugin's deny carries the plugin's reason).

use berth_core::{Error, ErrorKind};
use tonic::{Code, Status};

pub fn of(e: &Error) -> Status {
    let code = match e.kind() {
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::Invalid | ErrorKind::Config => Code::InvalidArgument,
        ErrorKind::Conflict => Code::FailedPrecondition,
        ErrorKind::NotSupported => Code::Unimplemented,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Timeout => Code::DeadlineExceeded,
        ErrorKind::Denied => Code::PermissionDenied,
        ErrorKind::Storage => Code::ResourceExhausted,
        ErrorKind::CommandNotFound => Code::NotFound,
        ErrorKind::Backend | ErrorKind::PluginFailed | ErrorKind::Corrupt | ErrorKind::Io => {
            Code::Internal
        }
    };
    Status::new(code, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deny_is_permission_denied_with_the_plugins_reason() {
        let deny = Error::Denied {
            plugin: "guard".into(),
            hook: "pod-pre-create".into(),
            reason: "host port 9999 is outside 8000-8999".into(),
        };
        let status = of(&deny);
        assert_eq!(status.code(), Code::PermissionDenied);
        assert!(status.message().contains("guard"), "{}", status.message());
        assert!(status.message().contains("9999"), "{}", status.message());
        let missing = of(&Error::not_found(berth_core::Object::Image, "busybox"));
        assert_eq!(missing.code(), Code::NotFound);
    }
}
