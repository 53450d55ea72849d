//! End-to-end: plugins as adversaries, against the real `berth` binary on the native backend.
//!
//! `test/hostile` plays every world and attacks when a container's name or `attack` label asks
//! it to (a megabyte reason, terminal controls, a name or backend breaking the rules, patches
//! the CLI would refuse, a log flood, a trap); `test/impostor` exports the naming interface with
//! the wrong types; and plugin paths point at a FIFO, a device and an oversized file. Each
//! attack must end in its documented exit code, with no panic, at most 64 KiB of stderr that
//! names the plugin and carries no raw control byte, nothing created, a decision log that still
//! parses, and a host that runs the next container.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_tests::env::{BerthEnv, Run};
use berth_tests::plugins::{HOSTILE, IMPOSTOR};

const IMAGE: &str = "busybox:local";

/// What the hostile plugin puts in its answers (see `plugins/test/hostile`).
const CONTROLS: &str = "\x1b[2J\x1b]0;pwned\x07\rberth: ok\x08\x08\u{9b}31m\u{202e}desrever";
/// The same, as berth prints it.
const ESCAPED: &str = "\\x1b[2J\\x1b]0;pwned\\x07\\rberth: ok\\x08\\x08\\x9b31m\\u{202e}desrever";

/// Most stderr any attack may cause.
const MAX_STDERR: usize = 64 << 10;

fn entry(name: &str, path: &Path, worlds: &str, extra: &str) -> String {
    format!(
        "[[plugins]]\nname = {name:?}\npath = {:?}\nworlds = [{worlds}]\n{extra}\n",
        path.display().to_string()
    )
}

/// The hostile plugin in all three worlds, with a budget that lets its floods finish.
/// The hostile plugin in every world, with time enough for its floods: what is under test
/// here is what it hands back, not the pipeline's budget.
fn hostile(extra: &str) -> BerthEnv {
    let plugin = entry(
        "hostile",
        &HOSTILE.path(),
        "\"name-policy\", \"backend-policy\", \"lifecycle-hooks\"",
        &format!("timeout-ms = 5000\nmemory-mb = 64\n{extra}"),
    );
    BerthEnv::new(&format!("[pipeline]\nbudget-ms = 60000\n\n{plugin}")).with_busybox()
}

/// `berth ARGS` without colours (berth's own ANSI styling is not what is under test), killed
/// and failed if it takes longer than `limit`: a hang is a failure, not a stuck test run.
fn berth_within(env: &BerthEnv, args: &[&str], limit: Duration) -> Run {
    let mut child = env
        .command(args)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running berth");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).unwrap();
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("berth {args:?} still ran after {limit:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn berth(env: &BerthEnv, args: &[&str]) -> Run {
    berth_within(env, args, Duration::from_secs(60))
}

/// The control characters in `text` other than newline: what would reach a terminal raw.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| c != '\n' && (c.is_control() || ('\u{202a}'..='\u{2069}').contains(&c)))
        .collect()
}

/// What every attack must leave: its exit code, no panic, bounded and escaped stderr naming
/// the plugin, no container, a decision log that parses (and prints escaped), and a host that
/// still runs a container.
#[track_caller]
fn contained(env: &BerthEnv, run: &Run, code: i32, plugin: &str) {
    assert_eq!(
        run.code,
        code,
        "stderr: {}",
        &run.stderr[..run.stderr.len().min(4096)]
    );
    assert!(
        !run.stderr.contains("panicked at host/") && !run.stderr.contains("RUST_BACKTRACE"),
        "berth panicked: {}",
        run.stderr
    );
    assert!(
        run.stderr.len() <= MAX_STDERR,
        "{} bytes of stderr",
        run.stderr.len()
    );
    assert!(
        run.stderr.contains(&format!("\"{plugin}\"")),
        "the plugin is not named: {}",
        run.stderr
    );
    assert_eq!(raw_controls(&run.stderr), [], "{}", run.stderr);
    assert_eq!(raw_controls(&run.stdout), [], "{}", run.stdout);

    let containers = berth(env, &["ps", "-a", "--json"]).ok().json();
    assert_eq!(containers, serde_json::json!([]), "something was created");

    let log = berth(env, &["events", "--json"]).ok();
    for line in log.stdout.lines() {
        assert!(line.len() < 80 << 10, "a decision of {} bytes", line.len());
        serde_json::from_str::<serde_json::Value>(line).expect("a decision that parses");
    }
    let text = berth(env, &["events"]).ok();
    assert_eq!(raw_controls(&text.stdout), [], "{}", text.stdout);

    let next = berth(env, &["run", "--rm", IMAGE, "echo", "still here"]).ok();
    assert_eq!(next.stdout, "still here\n");
}

/// The decisions in the log, as JSON.
fn decisions(env: &BerthEnv) -> Vec<serde_json::Value> {
    berth(env, &["events", "--json"])
        .ok()
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_megabyte_deny_reason_is_cut_to_4_kib_with_a_marker() {
    let env = hostile("");
    let run = berth(
        &env,
        &["run", "--rm", "--name", "long-reason", IMAGE, "true"],
    );
    assert!(
        run.stderr
            .starts_with("berth: error: denied by plugin \"hostile\" at validate-name: "),
        "{}",
        &run.stderr[..200.min(run.stderr.len())]
    );
    assert!(run.stderr.contains("…[truncated: "), "no marker");
    // 4 KiB of reason, escaped (a control becomes up to 8 characters).
    assert!(run.stderr.len() < 4 * 4096, "{} bytes", run.stderr.len());
    contained(&env, &run, 77, "hostile");
    let reason = decisions(&env)[0]["reason"].as_str().unwrap().to_string();
    assert!(
        reason.len() <= 4096 + 64,
        "a recorded reason of {} bytes",
        reason.len()
    );
}

#[test]
fn terminal_controls_in_a_reason_are_written_out_and_json_keeps_them_exact() {
    let env = hostile("");
    let run = berth(
        &env,
        &["run", "--rm", "--name", "escape-reason", IMAGE, "true"],
    );
    assert_eq!(
        run.stderr,
        format!("berth: error: denied by plugin \"hostile\" at validate-name: {ESCAPED}\n")
    );
    contained(&env, &run, 77, "hostile");

    let text = berth(&env, &["events"]).ok().stdout;
    assert!(text.contains(ESCAPED), "{text}");
    assert_eq!(decisions(&env)[0]["reason"], CONTROLS, "--json is exact");
}

#[test]
fn a_trap_with_a_long_panic_message_is_bounded_and_escaped() {
    let env = hostile("");
    let run = berth(&env, &["run", "--rm", "--name", "trap", IMAGE, "true"]);
    assert!(
        run.stderr
            .starts_with("berth: error: plugin \"hostile\" failed at validate-name (trap): "),
        "{}",
        &run.stderr[..200.min(run.stderr.len())]
    );
    assert!(run.stderr.contains(ESCAPED), "{}", run.stderr);
    contained(&env, &run, 70, "hostile");
}

#[test]
fn a_generated_name_breaking_the_host_rule_is_the_plugins_failure() {
    let env = hostile("");
    for attack in ["bad-name", "long-name"] {
        let label = format!("attack={attack}");
        let run = berth(&env, &["run", "--rm", "-l", &label, IMAGE, "true"]);
        assert!(
            run.stderr.starts_with(
                "berth: error: plugin \"hostile\" failed at generate-name (bad answer): generated \
                 a name the host refuses: invalid container name"
            ),
            "{attack}: {}",
            run.stderr
        );
        assert!(
            run.stderr.len() < 1024,
            "{attack}: {} bytes",
            run.stderr.len()
        );
        contained(&env, &run, 70, "hostile");
    }
}

#[test]
fn a_megabyte_backend_answer_is_the_plugins_failure_and_echoed_bounded() {
    let env = hostile("");
    let run = berth(
        &env,
        &["run", "--rm", "-l", "attack=backend", IMAGE, "true"],
    );
    assert!(
        run.stderr.starts_with(
            "berth: error: plugin \"hostile\" failed at select-backend (bad answer): answered "
        ),
        "{}",
        &run.stderr[..200.min(run.stderr.len())]
    );
    assert!(
        run.stderr
            .contains("which is not one of the candidate backends (native)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.len() < 4096, "{} bytes", run.stderr.len());
    contained(&env, &run, 70, "hostile");
}

#[test]
fn patches_the_cli_would_refuse_are_the_plugins_failure_naming_hook_and_field() {
    let env = hostile("");
    for (attack, field) in [
        ("patch-env", "invalid environment variable \"A=B\""),
        ("patch-nul", "invalid environment variable \"A\\0B\""),
        ("patch-mount", "invalid mount target \"relative\""),
        ("patch-limits", "invalid pids limit 0"),
        ("patch-dns", "invalid DNS server \"resolver.corp\""),
        (
            "patch-host",
            "its patch adds a bad host entry: invalid host entry \"db:10.0.0.256\"",
        ),
        ("patch-count", "its patch sets 100000 entries (100000 env"),
        ("patch-bytes", "its patch carries 1048579 bytes"),
    ] {
        let label = format!("attack={attack}");
        let run = berth(&env, &["run", "--rm", "-l", &label, IMAGE, "true"]);
        assert!(
            run.stderr.starts_with(
                "berth: error: plugin \"hostile\" failed at pre-create (bad answer): "
            ) && run.stderr.contains(field),
            "{attack}: {}",
            run.stderr
        );
        contained(&env, &run, 70, "hostile");
    }
}

#[test]
fn under_on_error_allow_a_refused_patch_is_skipped_and_recorded() {
    let env = hostile("on-error = \"allow\"");
    let run = berth(
        &env,
        &[
            "run",
            "--rm",
            "-l",
            "attack=patch-env",
            IMAGE,
            "sh",
            "-c",
            "env | grep -c '^A' || true",
        ],
    )
    .ok();
    assert_eq!(run.stdout, "0\n", "the patch was not applied");
    let skipped = decisions(&env)
        .into_iter()
        .find(|d| d["function"] == "pre-create")
        .unwrap();
    assert_eq!(skipped["verdict"], "error");
    assert!(
        skipped["reason"]
            .as_str()
            .unwrap()
            .ends_with("(on-error = allow: plugin skipped)"),
        "{skipped}"
    );
}

#[test]
fn a_long_deny_at_pre_create_gives_the_name_back() {
    let env = hostile("");
    let run = berth(
        &env,
        &[
            "run",
            "--rm",
            "--name",
            "web",
            "-l",
            "attack=deny-hook",
            IMAGE,
            "true",
        ],
    );
    assert!(
        run.stderr
            .starts_with("berth: error: denied by plugin \"hostile\" at pre-create: "),
        "{}",
        &run.stderr[..200.min(run.stderr.len())]
    );
    contained(&env, &run, 77, "hostile");
    // The claim was released: the name is free.
    berth(&env, &["run", "--rm", "--name", "web", IMAGE, "true"]).ok();
}

#[test]
fn a_deny_at_an_observing_hook_is_logged_escaped_and_the_run_stands() {
    let env = hostile("");
    let run = berth(
        &env,
        &[
            "run",
            "--rm",
            "-l",
            "attack=deny-post",
            IMAGE,
            "echo",
            "ran",
        ],
    );
    assert_eq!(run.stdout, "ran\n", "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "observing hook failed; nothing undone plugin=\"hostile\" hook=post-start \
             error=denied by plugin \"hostile\" at post-start: {ESCAPED}"
        )),
        "{}",
        run.stderr
    );
    contained(&env, &run, 0, "hostile");
}

/// The flood lines berth printed, and the messages its "dropped" lines count, per function.
fn flood(stderr: &str) -> (usize, Vec<(String, u64)>) {
    let kept = stderr.lines().filter(|l| l.contains("desrever")).count();
    let dropped = stderr
        .lines()
        .filter(|l| l.contains(" log messages dropped: "))
        .map(|l| {
            let count = l.split(" log messages dropped").next().unwrap();
            let count = count.rsplit(' ').next().unwrap().parse().unwrap();
            let function = l
                .split("function=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            (function.to_string(), count)
        })
        .collect();
    (kept, dropped)
}

/// Messages the hostile plugin sends per flood.
const FLOOD: u64 = 20_000;

#[test]
fn a_log_flood_in_one_call_is_cut_to_its_allowance_with_one_dropped_line() {
    let env = hostile("");
    let run = berth(
        &env,
        &["run", "--rm", "--name", "log-flood", IMAGE, "echo", "ran"],
    );
    assert_eq!(run.stdout, "ran\n", "{}", run.stderr);
    let (kept, dropped) = flood(&run.stderr);
    assert_eq!(dropped.len(), 1, "one line for the one call: {dropped:?}");
    assert_eq!(dropped[0].0, "validate-name");
    // At most 32 messages or 8 KiB per call; every message accounted for.
    assert!((1..=32).contains(&kept), "{kept} kept");
    assert_eq!(kept as u64 + dropped[0].1, FLOOD);
    assert!(
        run.stderr.contains("…[truncated: "),
        "4 KiB messages are cut"
    );
    contained(&env, &run, 0, "hostile");
}

#[test]
fn a_plugin_flooding_every_hook_is_held_to_its_total() {
    let env = hostile("");
    let run = berth(
        &env,
        &[
            "run",
            "--rm",
            "-l",
            "attack=hook-flood",
            IMAGE,
            "echo",
            "ran",
        ],
    );
    assert_eq!(run.stdout, "ran\n", "{}", run.stderr);
    let (kept, dropped) = flood(&run.stderr);
    // One dropped line per flooding call (every hook of a run), each counting that call's.
    let functions: Vec<&str> = dropped.iter().map(|(f, _)| f.as_str()).collect();
    for hook in [
        "pre-create",
        "post-create",
        "pre-start",
        "post-start",
        "post-remove",
    ] {
        assert_eq!(
            functions.iter().filter(|f| **f == hook).count(),
            1,
            "{hook}: {functions:?}"
        );
    }
    let sent = FLOOD * dropped.len() as u64;
    assert_eq!(
        kept as u64 + dropped.iter().map(|(_, n)| n).sum::<u64>(),
        sent
    );
    // 128 messages or 32 KiB for the whole command: more than one call's worth gets through,
    // and once the total is spent the calls after it are silent.
    let first_call = FLOOD - dropped[0].1;
    assert!(kept > first_call as usize && kept <= 128, "{kept} kept");
    assert_eq!(
        dropped.last().unwrap().1,
        FLOOD,
        "the last call is silent: {dropped:?}"
    );
    contained(&env, &run, 0, "hostile");
}

#[test]
fn a_mistyped_export_is_refused_at_load_and_by_check_naming_the_function() {
    let env =
        BerthEnv::new(&entry("impostor", &IMPOSTOR.path(), "\"name-policy\"", "")).with_busybox();
    // With a name given only validate-name would be called, whose type is right: without the
    // type check at load this run would succeed.
    let run = berth(&env, &["run", "--rm", "--name", "web", IMAGE, "true"]);
    assert!(
        run.stderr.contains(
            "plugin \"impostor\" failed at load (load error): configured as name-policy but"
        ) && run.stderr.contains(
            "its berth:plugin/naming@0.2.0 exports function generate-name with the wrong type"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(run.code, 70, "{}", run.stderr);
    assert!(run.stderr.contains("\"impostor\""));
    assert_eq!(
        berth(&env, &["ps", "-a", "--json"]).ok().json(),
        serde_json::json!([])
    );

    let path = IMPOSTOR.path().display().to_string();
    let check = berth(&env, &["plugin", "check", &path]);
    assert_eq!(check.code, 78, "{check:?}");
    assert!(
        check.stdout.contains("worlds     none\n"),
        "{}",
        check.stdout
    );
    assert!(
        check
            .stdout
            .contains("function generate-name with the wrong type"),
        "{}",
        check.stdout
    );
    let unconfigured = BerthEnv::new("");
    let check = berth(&unconfigured, &["plugin", "check", &path]);
    assert_eq!(check.code, 70, "{check:?}");
}

#[test]
fn a_plugin_path_that_is_no_regular_file_is_a_config_error_naming_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("policy.wasm");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let big = dir.path().join("big.wasm");
    std::fs::write(&big, vec![0u8; 2 << 20]).unwrap();

    for (path, extra, why) in [
        (fifo.as_path(), "", "is a FIFO, not a regular file"),
        (
            Path::new("/dev/zero"),
            "",
            "is a character device, not a regular file",
        ),
        (
            big.as_path(),
            "max-size-mb = 1",
            "is 2097152 bytes, more than max-size-mb = 1",
        ),
    ] {
        let env = BerthEnv::new(&entry("odd", path, "\"lifecycle-hooks\"", extra));
        let expected = format!(
            "berth: error: {}: [[plugins]] name = \"odd\": path {} {why}",
            env.config.display(),
            path.display()
        );
        for args in [
            &["run", "--rm", IMAGE, "true"][..],
            &["plugin", "check", &path.display().to_string()][..],
        ] {
            let run = berth_within(&env, args, Duration::from_secs(20));
            assert_eq!(run.code, 78, "{args:?}: {run:?}");
            assert!(
                run.stderr.starts_with(&expected),
                "{args:?}: {}",
                run.stderr
            );
        }
        assert_eq!(
            berth(&env, &["ps", "-a", "--json"]).ok().json(),
            serde_json::json!([])
        );
    }
}
