//! End-to-end: the `berth` binary as a user or a script drives it, on the native backend.

use std::process::Stdio;

use berth_tests::env::BerthEnv;

const IMAGE: &str = "busybox:local";

#[test]
fn run_exits_with_the_containers_exit_code_and_prints_its_output() {
    let env = BerthEnv::new("").with_busybox();
    let run = env.berth(&[
        "run",
        "--rm",
        IMAGE,
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(run.stdout, "out\n");
    assert!(run.stderr.contains("err\n"), "{run:?}");
    // --rm removed it.
    assert_eq!(
        env.berth(&["ps", "-a", "--json"]).ok().json(),
        serde_json::json!([])
    );
}

#[test]
fn flags_reach_the_container() {
    let env = BerthEnv::new("").with_busybox();
    let host_dir = env.dir.path().join("shared");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("note"), "from the host").unwrap();
    let volume = format!("{}:/data:ro", host_dir.display());
    let run = env
        .berth(&[
            "run", "--rm", "-e", "GREETING=hi", "-v", &volume, "--hostname", "box1", "-w", "/tmp",
            IMAGE, "sh", "-c",
            "echo $GREETING; cat /data/note; echo; hostname; pwd; touch /data/x 2>/dev/null || echo read-only",
        ])
        .ok();
    assert_eq!(run.stdout, "hi\nfrom the host\nbox1\n/tmp\nread-only\n");
}

#[test]
fn detached_container_is_stopped_inspected_and_removed_by_later_processes() {
    let env = BerthEnv::new("").with_busybox();
    let id = env
        .berth(&[
            "run", "-d", "--name", "sleeper", "-l", "tier=web", IMAGE, "sleep", "600",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "run -d prints the full id");

    let ps = env
        .berth(&["ps", "--json", "--filter", "label=tier=web"])
        .ok()
        .json();
    assert_eq!(ps[0]["name"], "sleeper");
    assert_eq!(ps[0]["state"], "running");
    assert_eq!(ps[0]["backend"], "native");
    let none = env
        .berth(&["ps", "--json", "--filter", "label=tier=db"])
        .ok()
        .json();
    assert_eq!(none, serde_json::json!([]));

    // A running container cannot be removed without --force.
    let refused = env.berth(&["rm", "sleeper"]);
    assert_eq!(refused.code, 73, "{refused:?}");

    env.berth(&["stop", "-t", "5", "sleeper"]).ok();
    let inspect = env.berth(&["inspect", &id[..12]]).ok().json();
    assert_eq!(inspect[0]["state"], "stopped");
    assert_eq!(inspect[0]["spec"]["labels"]["tier"], "web");
    assert_eq!(
        env.berth(&["ps", "--json"]).ok().json(),
        serde_json::json!([])
    );
    assert_eq!(
        env.berth(&["ps", "-a", "--json"]).ok().json()[0]["id"],
        id.as_str()
    );

    env.berth(&["rm", "sleeper"]).ok();
    let gone = env.berth(&["inspect", "sleeper"]);
    assert_eq!(gone.code, 66, "{gone:?}");
    assert!(
        gone.stderr.contains("container \"sleeper\" not found"),
        "{gone:?}"
    );
}

#[test]
fn logs_and_exec_work_from_new_processes() {
    let env = BerthEnv::new("").with_busybox();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "talker",
        IMAGE,
        "sh",
        "-c",
        "echo ready; sleep 600",
    ])
    .ok();
    let mut logs = String::new();
    for _ in 0..50 {
        logs = env.berth(&["logs", "talker"]).ok().stdout;
        if !logs.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(logs, "ready\n");
    let exec = env.berth(&[
        "exec",
        "-e",
        "X=1",
        "talker",
        "sh",
        "-c",
        "echo in $X; exit 4",
    ]);
    assert_eq!((exec.code, exec.stdout.as_str()), (4, "in 1\n"), "{exec:?}");

    // logs -f returns once the container exits.
    let follower = env
        .command(&["logs", "-f", "talker"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    env.berth(&["kill", "talker"]).ok();
    let out = follower.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ready\n");
    let inspect = env.berth(&["inspect", "talker"]).ok().json();
    assert_eq!(inspect[0]["exit_code"], 137, "killed by SIGKILL");
}

#[test]
fn names_are_unique_and_checked() {
    let env = BerthEnv::new("").with_busybox();
    env.berth(&["create", "--name", "one", IMAGE, "true"]).ok();
    let taken = env.berth(&["create", "--name", "one", IMAGE, "true"]);
    assert_eq!(taken.code, 73, "{taken:?}");
    assert!(
        taken.stderr.contains("container \"one\" already exists"),
        "{taken:?}"
    );
    let bad = env.berth(&["create", "--name=-bad name", IMAGE, "true"]);
    assert_eq!(bad.code, 64, "{bad:?}");
    assert!(bad.stderr.contains("invalid container name"), "{bad:?}");
}

#[test]
fn a_missing_image_is_not_found_and_leaves_no_record() {
    let env = BerthEnv::new("");
    let run = env.berth(&["run", "--rm", "nope:latest", "true"]);
    assert_eq!(run.code, 66, "{run:?}");
    assert!(run.stderr.contains("nope:latest"), "{run:?}");
    assert_eq!(
        env.berth(&["ps", "-a", "--json"]).ok().json(),
        serde_json::json!([])
    );
}

#[test]
fn two_processes_racing_on_one_container_agree() {
    let env = BerthEnv::new("").with_busybox();
    env.berth(&["run", "-d", "--name", "contested", IMAGE, "sleep", "600"])
        .ok();
    let racers: Vec<_> = (0..2)
        .map(|_| {
            env.command(&["rm", "-f", "contested"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let codes: Vec<i32> = racers
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.code().unwrap())
        .collect();
    // One removes it; the other either also succeeds or finds it gone. Nothing is corrupt.
    assert!(codes.contains(&0), "{codes:?}");
    assert!(codes.iter().all(|c| *c == 0 || *c == 66), "{codes:?}");
    assert_eq!(
        env.berth(&["ps", "-a", "--json"]).ok().json(),
        serde_json::json!([])
    );
    // And the name is free again.
    env.berth(&["run", "--rm", "--name", "contested", IMAGE, "true"])
        .ok();
}

/// One truncated record among several stands for itself alone: `ps` lists it with its error
/// and path, every other container works, a new one can be made, and `rm -f` removes it.
#[test]
fn a_corrupt_record_affects_only_its_own_container() {
    let env = BerthEnv::new("").with_busybox();
    let create = |name: &str| {
        env.berth(&["create", "--name", name, IMAGE, "true"])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    let id = create("victim");
    create("bystander");
    let record = env
        .state_dir()
        .join("containers")
        .join(&id)
        .join("config.json");
    std::fs::write(&record, b"{\"id\": truncated").unwrap();

    let ps = env.berth(&["ps", "-a", "--json"]).ok().json();
    let rows = ps.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{ps}");
    let broken = rows.iter().find(|r| r["id"] == id.as_str()).unwrap();
    assert_eq!(broken["state"], "dead", "{broken}");
    let detail = broken["status_detail"].as_str().unwrap();
    assert!(detail.contains(&record.display().to_string()), "{detail}");
    assert!(
        rows.iter()
            .any(|r| r["name"] == "bystander" && r["state"] == "created")
    );
    env.berth(&["run", "--rm", IMAGE, "true"]).ok();
    env.berth(&["start", "bystander"]).ok();

    // Not started nor removed by mistake; `rm -f` is the way, and it is said.
    let start = env.berth(&["start", &id]);
    assert_eq!(start.code, 65, "{start:?}");
    let rm = env.berth(&["rm", &id]);
    assert_eq!(rm.code, 65, "{rm:?}");
    assert!(rm.stderr.contains("rm -f"), "{rm:?}");
    assert!(record.exists(), "never silently dropped");
    env.berth(&["rm", "-f", &id]).ok();
    assert!(!record.exists());
    let left = env.berth(&["ps", "-a", "--json"]).ok().json();
    assert_eq!(left.as_array().unwrap().len(), 1, "{left}");
}

#[test]
fn config_errors_name_the_file_the_line_and_the_key() {
    // Appended right after [backends.native], so the key lands in that table.
    let env = BerthEnv::new("surprise = 1\n");
    let run = env.berth(&["ps"]);
    assert_eq!(run.code, 78, "{run:?}");
    assert!(run.stderr.contains("berth.toml"), "{run:?}");
    assert!(run.stderr.contains("surprise"), "{run:?}");
    assert!(run.stderr.contains("line"), "{run:?}");

    let check = env.berth(&["config", "check"]);
    assert_eq!(check.code, 78);

    let good = BerthEnv::new("");
    let check = good.berth(&["config", "check"]).ok();
    assert!(
        check.stdout.contains("ok (1 backend(s): native"),
        "{check:?}"
    );
}

#[test]
fn builtin_config_is_shown_and_used_without_a_file() {
    let out = std::process::Command::new(berth_tests::bin::berth_exe())
        .args(["config", "show"])
        .env_remove("BERTH_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("[backends.native]"), "{text}");
    assert!(berth_core::Config::parse(&text, "shown", None).is_ok());
}

#[test]
fn backend_ls_reports_the_native_backend_healthy() {
    let env = BerthEnv::new("");
    let backends = env.berth(&["backend", "ls", "--json"]).ok().json();
    assert_eq!(backends[0]["name"], "native");
    assert_eq!(backends[0]["kind"], "native");
    assert_eq!(backends[0]["healthy"], true);
}

#[test]
fn usage_errors_exit_2() {
    let env = BerthEnv::new("");
    assert_eq!(env.berth(&["run", "--no-such-flag"]).code, 2);
    assert_eq!(env.berth(&["run", "--memory", "lots", IMAGE]).code, 64);
}

#[test]
fn limits_that_cannot_mean_what_was_asked_are_refused_up_front() {
    let env = BerthEnv::new("").with_busybox();
    for (flag, value, says) in [
        ("--cpus", "0.0001", "between 0.01 and"),
        ("--cpus", "1e9", "this machine's CPUs"),
        ("--pids-limit", "0", "at least one process"),
        ("--memory", "1", "at least 4 MiB"),
    ] {
        let run = env.berth(&["run", "--rm", flag, value, IMAGE, "true"]);
        assert_eq!(run.code, 64, "{flag} {value}: {run:?}");
        assert!(run.stderr.contains(says), "{flag} {value}: {run:?}");
    }
    assert_eq!(
        env.berth(&["ps", "-a", "--json"]).ok().json(),
        serde_json::json!([])
    );
}

#[test]
fn a_command_missing_from_the_image_fails_clearly_and_rm_leaves_nothing() {
    let env = BerthEnv::new("").with_busybox();
    let run = env.berth(&["run", "--rm", IMAGE, "/no/such/program"]);
    assert_eq!(run.code, 127, "as docker: {run:?}");
    assert!(
        run.stderr.contains("'/no/such/program' not found"),
        "{run:?}"
    );
    assert_eq!(
        run.stderr.matches("not found").count(),
        1,
        "the cause is said once: {run:?}"
    );
    // A bare name is looked up in the image's PATH; found through a symlink, it runs.
    let bare = env.berth(&["run", "--rm", IMAGE, "no-such-program"]);
    assert_eq!(bare.code, 127, "{bare:?}");
    assert!(bare.stderr.contains("PATH"), "{bare:?}");
    env.berth(&["run", "--rm", IMAGE, "true"]).ok();
    assert_eq!(
        env.berth(&["ps", "-a", "--json"]).ok().json(),
        serde_json::json!([])
    );
}

#[test]
fn a_closed_stdout_ends_berth_quietly_like_sigpipe() {
    let env = BerthEnv::new("");
    // A pipe whose reader is already gone, as after `berth ... | head -1` has read its line.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = env
        .command(&["config", "show"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(141), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "no panic message");
}

/// A state-dir or run-dir berth cannot use is a configuration error (78) naming the key, found
/// by `config check` too, not a 125 on every command or running containers shown as dead.
#[test]
fn unusable_state_and_run_dirs_are_configuration_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state-is-a-file");
    std::fs::write(&file, "").unwrap();
    let read_only = dir.path().join("ro");
    let _tmpfs = berth_tests::env::Tmpfs::mount(&read_only, "ro,size=1m");
    for (key, state, run) in [
        ("state-dir", file.clone(), dir.path().join("run")),
        ("run-dir", dir.path().join("state"), read_only.join("run")),
    ] {
        let config =
            berth_tests::env::native_config(&dir.path().join(format!("{key}.toml")), &state, &run);
        for args in [
            vec!["config", "check", &config],
            vec!["--config", &config, "ps", "-a"],
        ] {
            let run = berth_tests::env::run_berth(&args);
            assert_eq!(run.code, 78, "{args:?}: {run:?}");
            assert!(run.stderr.contains(&format!("[host].{key}")), "{run:?}");
        }
    }
}
