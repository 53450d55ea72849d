//! Hidden subcommands of the `berth` binary that the native backend runs in fresh processes.
//!
//! The binary's `main` calls [`dispatch`] before it does anything else (no runtime, no threads,
//! no logging), because libcontainer's raw `clone3` is only safe from a single-threaded process.

/// Runs the supervisor (`__native-supervise`) or exec helper (`__native-exec`) when `args[1]`
/// names one and returns its exit code; `None` for any other command line.
pub fn dispatch(args: &[String]) -> Option<i32> {
    let rest = args.get(2..).unwrap_or_default();
    match args.get(1).map(String::as_str) {
        Some(SUPERVISE) => Some(crate::supervisor::main(rest)),
        Some(EXEC) => Some(crate::exec::main(rest)),
        _ => None,
    }
}

pub(crate) const SUPERVISE: &str = "__native-supervise";
pub(crate) const EXEC: &str = "__native-exec";

#[cfg(test)]
mod tests {
    #[test]
    fn other_commands_pass_through() {
        let args = ["berth".to_string(), "run".to_string()];
        assert_eq!(super::dispatch(&args), None);
        assert_eq!(super::dispatch(&args[..1]), None);
    }
}
