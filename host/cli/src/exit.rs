//! Exit codes: one per kind of failure, so scripts can branch without parsing messages.
//!
//! `berth run` and `berth exec` exit with the container's (or process's) own code when berth
//! itself did not fail; the codes below are berth's own failures (sysexits-style, plus docker's
//! 125 for anything else). [`CODES`] is the one table: `--help` is printed from it, and a test
//! holds the README's table to it.

use std::sync::LazyLock;

use berth_core::ErrorKind;

pub const USAGE: i32 = 2;
pub const INVALID: i32 = 64;
pub const CORRUPT: i32 = 65;
pub const NOT_FOUND: i32 = 66;
pub const UNAVAILABLE: i32 = 69;
pub const PLUGIN_FAILED: i32 = 70;
pub const CONFLICT: i32 = 73;
/// sysexits' EX_IOERR: the disk is full or read-only.
pub const STORAGE: i32 = 74;
pub const TIMEOUT: i32 = 75;
pub const NOT_SUPPORTED: i32 = 76;
pub const DENIED: i32 = 77;
pub const CONFIG: i32 = 78;
pub const OTHER: i32 = 125;
/// As docker: the container's command is not in its image.
pub const COMMAND_NOT_FOUND: i32 = 127;
/// `berth ps | head -1`: stdout closed by its reader, as a SIGPIPE death would end it.
pub const CLOSED_STDOUT: i32 = 128 + libc::SIGPIPE;

/// Every exit code berth documents, with its meaning.
pub const CODES: &[(i32, &str)] = &[
    (
        0,
        "success (`run`, `exec`: the container's or process's own code when berth itself succeeded)",
    ),
    (USAGE, "usage error (unknown flag, missing argument)"),
    (
        INVALID,
        "invalid input (a name, size, mount or spec that breaks a rule)",
    ),
    (
        CORRUPT,
        "corrupt data (a malformed archive or state record)",
    ),
    (NOT_FOUND, "not found (container, image, plugin)"),
    (
        UNAVAILABLE,
        "unreachable: a backend (daemon down, socket missing), an image registry or the package repository",
    ),
    (
        PLUGIN_FAILED,
        "a plugin cannot load (an ungranted import, a sha256 pin mismatch), or it failed (trap, timeout, out of memory, an answer that breaks the rules) and its `on-error` is `deny`",
    ),
    (
        CONFLICT,
        "conflict (name taken, image in use, container running)",
    ),
    (
        STORAGE,
        "storage: a disk is full, over quota or read-only (the message names the path)",
    ),
    (TIMEOUT, "timeout"),
    (
        NOT_SUPPORTED,
        "not supported: the backend cannot honour a field or an operation (the message names the backends that can)",
    ),
    (
        DENIED,
        "denied: by a policy plugin, or by a registry (wrong or missing credentials: `berth login`)",
    ),
    (CONFIG, "configuration error"),
    (OTHER, "any other berth failure"),
    (
        COMMAND_NOT_FOUND,
        "the container's command does not exist in its image (as docker)",
    ),
    (
        CLOSED_STDOUT,
        "stdout was closed by its reader (`berth ps | head -1`), quietly, as a SIGPIPE death would end it",
    ),
];

/// The `--help` epilogue, from [`CODES`].
pub static EXIT_CODES_HELP: LazyLock<String> = LazyLock::new(|| {
    let mut help = String::from("Exit codes:\n");
    for (code, meaning) in CODES {
        help.push_str(&format!("  {code:<4} {meaning}\n"));
    }
    help.trim_end().to_string()
});

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
        ErrorKind::Storage => STORAGE,
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
    fn every_code_an_error_maps_to_is_documented() {
        use ErrorKind::*;
        for kind in [
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
            Storage,
            Io,
        ] {
            let code = for_kind(kind);
            assert!(
                CODES.iter().any(|(c, _)| *c == code),
                "{kind:?} -> {code} undocumented"
            );
        }
        for (code, meaning) in CODES {
            assert!(
                EXIT_CODES_HELP.contains(&format!("  {code:<4} {meaning}")),
                "{code} missing from --help"
            );
        }
    }

    /// The README's exit-code table is this table, row for row.
    #[test]
    fn the_readme_table_is_the_code_table() {
        let readme = include_str!("../../../README.md");
        let start = readme
            .find("| code | meaning |")
            .expect("README has an exit-code table");
        let rows: Vec<(i32, String)> = readme[start..]
            .lines()
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .map(|line| {
                let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
                (
                    cells[0].trim().parse().expect("a code"),
                    cells[1].trim().replace("\\|", "|"),
                )
            })
            .collect();
        let table: Vec<(i32, String)> = CODES.iter().map(|(c, m)| (*c, m.to_string())).collect();
        assert_eq!(rows, table);
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
