//! Exit codes: one per kind of failure, so scripts can branch without parsing messages.
//!
//! `berth run` and `berth exec` exit with the container's (or process's) own code when berth
//! itself did not fail; the codes below are berth's own failures (sysexits-style, plus docker's
//! 125 for anything else).

use berth_core::ErrorKind;

pub const USAGE: i32 = 2;
pub const INVALID: i32 = 64;
pub const CORRUPT: i32 = 65;
pub const NOT_FOUND: i32 = 66;
pub const UNAVAILABLE: i32 = 69;
pub const PLUGIN_FAILED: i32 = 70;
pub const CONFLICT: i32 = 73;
pub const TIMEOUT: i32 = 75;
pub const NOT_SUPPORTED: i32 = 76;
pub const DENIED: i32 = 77;
pub const CONFIG: i32 = 78;
pub const OTHER: i32 = 125;
/// As docker: the container's command is not in its image.
pub const COMMAND_NOT_FOUND: i32 = 127;

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    success (run/exec: the container's exit code when berth itself succeeded)
  2    usage error (unknown flag, missing argument)
  64   invalid input (a name, size, mount or spec that breaks a rule)
  65   corrupt data (a malformed archive or state record)
  66   not found (container, image, plugin)
  69   unreachable: a backend (daemon down, socket missing) or the package repository
  70   plugin failed: cannot load (ungranted import, sha256 pin), or trapped, timed out
       or ran out of memory with on-error = \"deny\"
  73   conflict (name taken, image in use, container running)
  75   timeout (e.g. stop without --force semantics)
  76   operation not supported by the backend
  77   denied by a policy plugin
  78   configuration error
  125  any other berth failure
  127  the container's command does not exist in its image
  141  stdout was closed by its reader (`berth ps | head -1`), as a SIGPIPE death";

/// The exit code for a berth library error.
pub fn for_kind(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::Invalid => INVALID,
        ErrorKind::Corrupt => CORRUPT,
        ErrorKind::NotFound => NOT_FOUND,
        ErrorKind::Unavailable => UNAVAILABLE,
        ErrorKind::PluginFailed => PLUGIN_FAILED,
        ErrorKind::Conflict | ErrorKind::AlreadyExists => CONFLICT,
        ErrorKind::Timeout => TIMEOUT,
        ErrorKind::NotSupported => NOT_SUPPORTED,
        ErrorKind::Denied => DENIED,
        ErrorKind::Config => CONFIG,
        ErrorKind::CommandNotFound => COMMAND_NOT_FOUND,
        ErrorKind::Backend | ErrorKind::Io => OTHER,
    }
}

/// The exit code for any error reaching `main`: the first berth error in the chain decides.
pub fn for_error(error: &anyhow::Error) -> i32 {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<berth_core::Error>())
        .map_or(OTHER, |e| for_kind(e.kind()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_code() {
        for code in [
            USAGE,
            INVALID,
            CORRUPT,
            NOT_FOUND,
            UNAVAILABLE,
            PLUGIN_FAILED,
            CONFLICT,
            TIMEOUT,
            NOT_SUPPORTED,
            DENIED,
            CONFIG,
            OTHER,
        ] {
            assert!(
                EXIT_CODES_HELP.contains(&format!("  {code} ")),
                "{code} undocumented"
            );
        }
    }

    #[test]
    fn wrapped_errors_keep_their_code() {
        let denied = berth_core::Error::Denied {
            plugin: "guard".into(),
            hook: "pre-create".into(),
            reason: "no memory limit".into(),
        };
        let wrapped = anyhow::Error::new(denied).context("running container web");
        assert_eq!(for_error(&wrapped), DENIED);
        assert_eq!(for_error(&anyhow::anyhow!("plain")), OTHER);
    }
}
