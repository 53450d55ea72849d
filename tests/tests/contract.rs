//! The backend contract: every backend is held to the capabilities it declares, both ways.
//! Where `berth backend ls` lists a capability, the shared flow for it runs against that
//! backend's real store; where it does not, the request is refused with 76 before anything is
//! created, never quietly dropped. Native, containerd, Docker and Apple (dockerd's socket
//! standing in for socktainer's) all run the same flows.

use std::io::Write;
use std::process::Stdio;

use berth_tests::archives;
use berth_tests::containerd::{self, containerd_env};
use berth_tests::docker::{self, docker_env};
use berth_tests::env::{BerthEnv, Run};
use berth_tests::pty::Terminal;
use berth_tests::registry::{Guard, OwnRegistry, push_with};
use berth_tests::snapshots;

/// One backend under test: an installation that has it, and an image it can run.
struct Subject {
    backend: &'static str,
    env: BerthEnv,
    image: &'static str,
}

impl Subject {
    fn native() -> Subject {
        Subject {
            backend: "native",
            env: BerthEnv::new("").with_busybox(),
            image: "busybox:local",
        }
    }

    fn containerd() -> Subject {
        Subject {
            backend: "containerd",
            env: containerd_env(""),
            image: containerd::busybox_image(),
        }
    }

    fn docker() -> Subject {
        Subject {
            backend: "docker",
            env: docker_env(""),
            image: docker::busybox_image(),
        }
    }

    fn apple() -> Subject {
        Subject {
            backend: "apple",
            env: docker_env(
                "[backends.apple]\ntype = \"apple\"\nsocket = \"unix:///var/run/docker.sock\"\n",
            ),
            image: docker::busybox_image(),
        }
    }

    fn all() -> [Subject; 4] {
        [
            Subject::native(),
            Subject::containerd(),
            Subject::docker(),
            Subject::apple(),
        ]
    }

    /// The capabilities `backend ls --json` shows for this backend.
    fn claims(&self, capability: &str) -> bool {
        let backends = self.env.berth(&["backend", "ls", "--json"]).json();
        let me = backends
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == self.backend)
            .unwrap_or_else(|| panic!("{} is not listed: {backends}", self.backend));
        assert_eq!(me["healthy"], true, "{me}");
        me["features"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == capability)
    }

    /// A container name unique to this process and backend.
    fn name(&self, what: &str) -> String {
        format!("bt{}-{}-{what}", std::process::id(), self.backend)
    }

    fn berth(&self, args: &[&str]) -> Run {
        self.env.berth(args)
    }

    /// A detached, long-running container; its name.
    fn running(&self, what: &str) -> String {
        let name = self.name(what);
        self.berth(&[
            "run",
            "-d",
            "--backend",
            self.backend,
            "--name",
            &name,
            self.image,
            "sleep",
            "300",
        ])
        .ok();
        name
    }

    /// `refused` is a 76 that names this backend, and nothing called `name` exists after it.
    #[track_caller]
    fn assert_refused(&self, refused: &Run, name: Option<&str>) {
        assert_eq!(refused.code, 76, "{}: {refused:?}", self.backend);
        assert!(
            refused.stderr.contains(&format!("\"{}\"", self.backend)),
            "the refusal names the backend: {refused:?}"
        );
        if let Some(name) = name {
            let all = self.berth(&["ps", "-a", "--json"]).ok().json();
            assert!(
                !all.as_array().unwrap().iter().any(|c| c["name"] == name),
                "{name} was created anyway: {all}"
            );
        }
    }
}

#[test]
fn snapshots_work_wherever_they_are_claimed_and_are_refused_elsewhere() {
    for subject in Subject::all() {
        if subject.claims("snapshots") {
            snapshots::a_chain_of_snapshots_is_mounted_and_traced(&subject.env, subject.backend);
        } else {
            let refused = subject.berth(&["snapshot", "--backend", subject.backend, "ls"]);
            subject.assert_refused(&refused, None);
            let kept = subject.running("keep");
            let refused = subject.berth(&["rm", "-f", "--keep-snapshot", &kept]);
            subject.assert_refused(&refused, None);
            // Refused before anything was removed.
            subject.berth(&["rm", "-f", &kept]).ok();
        }
    }
}

#[test]
fn versions_work_wherever_commit_and_rollback_are_claimed() {
    for subject in Subject::all() {
        let versions = ["commit", "rollback", "snapshots"]
            .iter()
            .all(|c| subject.claims(c));
        if versions {
            snapshots::versions_restore_a_containers_files(
                &subject.env,
                subject.backend,
                subject.image,
            );
            continue;
        }
        let container = subject.running("version");
        if !subject.claims("commit") {
            subject.assert_refused(&subject.berth(&["commit", &container]), None);
        }
        if !subject.claims("rollback") {
            subject.assert_refused(&subject.berth(&["rollback", &container, "v1"]), None);
        }
        subject.berth(&["rm", "-f", &container]).ok();
    }
}

/// Spec fields only some backends honour, as flags, for `subject`: a static address is on
/// the container's network where berth networks the backend, on Docker's VPC subnet
/// otherwise.
fn fields(subject: &Subject) -> Vec<(&'static str, Vec<String>)> {
    let flags = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let static_address = if subject.claims("network-namespace") {
        let subnet = subject.env.network.subnet(0);
        flags(&["--ip", &subnet.replace("0/24", "9")])
    } else {
        flags(&["--ip", "10.77.9.5", "--subnet", "10.77.9.0/24"])
    };
    if subject.claims("networks") {
        let subnet = subject.env.network.subnet(3);
        subject
            .berth(&["network", "create", "contract", "--subnet", &subnet])
            .ok();
    }
    vec![
        ("publish-ports", flags(&["-p", "127.0.0.1:18099:80"])),
        ("dns", flags(&["--dns", "10.0.0.2"])),
        ("restart-policy", flags(&["--restart", "on-failure"])),
        ("static-address", static_address),
        ("networks", flags(&["--network", "contract"])),
    ]
}

#[test]
fn spec_fields_are_honoured_or_refused_never_dropped() {
    for subject in Subject::all() {
        for (capability, flags) in &fields(&subject) {
            let name = subject.name(capability);
            let mut args = vec!["create", "--backend", subject.backend, "--name", &name];
            args.extend(flags.iter().map(String::as_str));
            args.extend([subject.image, "true"]);
            let created = subject.berth(&args);
            if subject.claims(capability) {
                let created = created.ok();
                let id = created.stdout.trim();
                subject.berth(&["rm", "-f", id]).ok();
            } else {
                subject.assert_refused(&created, Some(&name));
                assert!(
                    created.stderr.contains(flags[0].as_str()),
                    "the refusal names the flag: {created:?}"
                );
            }
        }
    }
}

/// `berth exec` on `container` with `stdin` piped in.
fn with_stdin(subject: &Subject, args: &[&str], stdin: &[u8]) -> Run {
    let mut child = subject
        .env
        .command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Without `-i` berth may exit before reading anything: a closed pipe is then its answer.
    match child.stdin.take().unwrap().write_all(stdin) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        written => written.unwrap(),
    }
    Run::from(child.wait_with_output().unwrap())
}

#[test]
fn exec_options_work_wherever_they_are_claimed() {
    for subject in Subject::all() {
        assert!(subject.claims("exec"), "every backend runs exec");
        let c = subject.running("exec");
        let plain = subject.berth(&["exec", &c, "echo", "plain"]).ok();
        assert_eq!(plain.stdout, "plain\n");
        // Without -i the process reads an empty stdin, as docker's.
        let no_stdin = with_stdin(&subject, &["exec", &c, "cat"], b"unread\n");
        assert_eq!(
            (no_stdin.code, no_stdin.stdout.as_str()),
            (0, ""),
            "{no_stdin:?}"
        );

        let cases: [(&str, Vec<&str>, &str); 3] = [
            (
                "exec-env",
                vec!["-e", "GREETING=hi", &c, "sh", "-c", "echo $GREETING"],
                "hi\n",
            ),
            ("exec-workdir", vec!["-w", "/etc", &c, "pwd"], "/etc\n"),
            ("exec-stdin", vec!["-i", &c, "cat"], "echoed back\n"),
        ];
        for (capability, flags, expected) in cases {
            let mut args = vec!["exec"];
            args.extend(&flags);
            let ran = with_stdin(&subject, &args, b"echoed back\n");
            if subject.claims(capability) {
                assert_eq!(
                    (ran.code, ran.stdout.as_str()),
                    (0, expected),
                    "{}: {capability}: {ran:?}",
                    subject.backend
                );
            } else {
                subject.assert_refused(&ran, None);
            }
        }
        subject.berth(&["rm", "-f", &c]).ok();
    }
}

#[test]
fn stats_work_wherever_they_are_claimed() {
    for subject in Subject::all() {
        let c = subject.running("stats");
        let stats = subject.berth(&["stats", "--json", &c]);
        if subject.claims("stats") {
            let figures = stats.ok().json();
            assert!(
                figures[0]["memory_usage_bytes"].as_u64().unwrap() > 0,
                "{figures}"
            );
        } else {
            subject.assert_refused(&stats, None);
        }
        subject.berth(&["rm", "-f", &c]).ok();
    }
}

#[test]
fn update_works_wherever_it_is_claimed() {
    for subject in Subject::all() {
        let c = subject.running("update");
        let updated = subject.berth(&["update", "--memory", "96m", &c]);
        if subject.claims("update-limits") {
            updated.ok();
            // The kernel's limit, as the container's own cgroup shows it.
            let file = "/sys/fs/cgroup/memory/memory.limit_in_bytes";
            let seen = || subject.berth(&["exec", &c, "cat", file]).ok().stdout;
            assert_eq!(
                seen().trim(),
                (96u64 << 20).to_string(),
                "{}",
                subject.backend
            );
            // And kept for the next start.
            subject.berth(&["stop", "-t", "0", &c]).ok();
            subject.berth(&["start", &c]).ok();
            assert_eq!(
                seen().trim(),
                (96u64 << 20).to_string(),
                "{} after a restart",
                subject.backend
            );
        } else {
            subject.assert_refused(&updated, None);
        }
        subject.berth(&["rm", "-f", &c]).ok();
    }
}

/// `run -i` feeds the container this process's stdin, and `attach` puts this process's stdio
/// on a running container's, wherever a stdin without a terminal is claimed; where attach
/// alone is (containerd: its shim gives stdin only to a terminal), `attach` follows a
/// container's output to its exit code; elsewhere each is refused (76) with nothing created.
#[test]
fn stdin_and_attach_work_wherever_they_are_claimed() {
    for subject in Subject::all() {
        let name = subject.name("stdin");
        let run = [
            "run",
            "-i",
            "--rm",
            "--backend",
            subject.backend,
            "--name",
            &name,
        ];
        let fed = with_stdin(
            &subject,
            &[&run[..], &[subject.image, "cat"]].concat(),
            b"through stdin\n",
        );
        if !subject.claims("stdin-pipe") {
            subject.assert_refused(&fed, Some(&name));
            if subject.claims("attach") {
                attach_follows_output(&subject);
            }
            continue;
        }
        assert_eq!(fed.ok().stdout, "through stdin\n", "{}", subject.backend);
        let shell = subject.name("shell");
        let detached = [
            "run",
            "-d",
            "-i",
            "--backend",
            subject.backend,
            "--name",
            &shell,
        ];
        subject
            .berth(&[&detached[..], &[subject.image, "sh"]].concat())
            .ok();
        let attached = with_stdin(&subject, &["attach", &shell], b"echo from-attach\nexit 4\n");
        assert_eq!(attached.code, 4, "{}: {attached:?}", subject.backend);
        assert_eq!(attached.stdout, "from-attach\n");
        subject.berth(&["rm", "-f", &shell]).ok();
    }
}

/// `attach` to a container without stdin: its output from then on, then its exit code.
fn attach_follows_output(subject: &Subject) {
    let name = subject.name("follow");
    let detached = ["run", "-d", "--backend", subject.backend, "--name", &name];
    let script = "sleep 2; echo late; echo late-err >&2; exit 4";
    subject
        .berth(&[&detached[..], &[subject.image, "sh", "-c", script]].concat())
        .ok();
    let attached = subject.berth(&["attach", &name]);
    assert_eq!(attached.code, 4, "{}: {attached:?}", subject.backend);
    assert_eq!(attached.stdout, "late\n", "{}", subject.backend);
    assert_eq!(attached.stderr, "late-err\n", "{}", subject.backend);
    subject.berth(&["rm", "-f", &name]).ok();
}

/// `run -it` puts the container on a terminal of this size, resized with this one, wherever a
/// terminal is claimed; elsewhere `-t` is refused (76) with nothing created.
#[test]
fn a_terminal_works_wherever_it_is_claimed() {
    for subject in Subject::all() {
        let name = subject.name("tty");
        let run = [
            "run",
            "-it",
            "--rm",
            "--backend",
            subject.backend,
            "--name",
            &name,
            subject.image,
            "sh",
        ];
        if !subject.claims("terminal") {
            // -t alone: -it would be refused first here, its stdin not being a terminal.
            let tty_only = [&["run", "-t"][..], &run[2..]].concat();
            subject.assert_refused(&subject.berth(&tty_only), Some(&name));
            continue;
        }
        let mut terminal = Terminal::spawn(subject.env.command(&run), 33, 101);
        terminal.expect("# ");
        terminal.send(b"stty size; tty\r");
        terminal.expect("33 101");
        terminal.expect("/dev/pts/");
        terminal.resize_and_ask(40, 120);
        terminal.send(b"exit 3\r");
        assert_eq!(terminal.wait(), 3, "{}", terminal.transcript);
        assert!(
            terminal.transcript.contains("40 120"),
            "{}: never resized:\n{}",
            subject.backend,
            terminal.transcript
        );
    }
}

/// `berth cp` both ways, with docker's landing rules, confined to the container's filesystem.
#[test]
fn files_copy_in_and_out_wherever_cp_is_claimed() {
    let host = tempfile::tempdir().unwrap();
    let hello = host.path().join("hello.txt");
    std::fs::write(&hello, "hello\n").unwrap();
    std::os::unix::fs::chown(&hello, Some(1234), Some(1234)).unwrap();
    let tree = host.path().join("tree");
    std::fs::create_dir_all(tree.join("a")).unwrap();
    std::fs::write(tree.join("a/b.txt"), "deep\n").unwrap();
    std::os::unix::fs::symlink("a/b.txt", tree.join("link")).unwrap();
    let (hello, tree) = (hello.display().to_string(), tree.display().to_string());
    // A name no host path has: a copy that escaped would leave it at the host's root.
    let marker = format!("berth-cp-escape-{}", std::process::id());

    for subject in Subject::all() {
        let c = subject.running("cp");
        let into = |path: &str| format!("{c}:{path}");
        let cat = |path: &str| subject.berth(&["exec", &c, "cat", path]).ok().stdout;
        if !subject.claims("copy-files") {
            subject.assert_refused(&subject.berth(&["cp", &hello, &into("/tmp")]), None);
            subject.berth(&["rm", "-f", &c]).ok();
            continue;
        }
        let backend = subject.backend;

        // In: into a directory, onto a new name, a tree that becomes a new directory.
        subject.berth(&["cp", &hello, &into("/tmp/")]).ok();
        assert_eq!(cat("/tmp/hello.txt"), "hello\n", "{backend}");
        let owner = subject
            .berth(&["exec", &c, "stat", "-c", "%u", "/tmp/hello.txt"])
            .ok();
        assert_eq!(
            owner.stdout, "0\n",
            "{backend}: a copy in belongs to root without -a"
        );
        subject
            .berth(&["cp", "-a", &hello, &into("/tmp/kept")])
            .ok();
        let kept = subject
            .berth(&["exec", &c, "stat", "-c", "%u", "/tmp/kept"])
            .ok();
        assert_eq!(kept.stdout, "1234\n", "{backend}: -a keeps the owner");
        subject.berth(&["cp", &tree, &into("/srv")]).ok();
        assert_eq!(cat("/srv/a/b.txt"), "deep\n", "{backend}");
        let link = subject.berth(&["exec", &c, "readlink", "/srv/link"]).ok();
        assert_eq!(
            link.stdout, "a/b.txt\n",
            "{backend}: a symlink is copied as one"
        );

        // A symlink in the container to `/` resolves inside it, never on the host.
        subject
            .berth(&["exec", &c, "ln", "-s", "/", "/tmp/escape"])
            .ok();
        let through = into(&format!("/tmp/escape/{marker}"));
        subject.berth(&["cp", &hello, &through]).ok();
        assert_eq!(cat(&format!("/{marker}")), "hello\n", "{backend}");
        assert!(
            !std::path::Path::new("/").join(&marker).exists(),
            "{backend}: escaped"
        );

        // Out: a file into a directory, a tree onto a new name, a followed link.
        let out = tempfile::tempdir().unwrap();
        let out_path = |name: &str| out.path().join(name);
        let shown = |name: &str| out_path(name).display().to_string();
        subject
            .berth(&["cp", &into("/srv/a/b.txt"), &shown("")])
            .ok();
        assert_eq!(
            std::fs::read_to_string(out_path("b.txt")).unwrap(),
            "deep\n"
        );
        subject
            .berth(&["cp", &into("/srv"), &shown("srv-copy")])
            .ok();
        assert_eq!(
            std::fs::read_to_string(out_path("srv-copy/a/b.txt")).unwrap(),
            "deep\n"
        );
        subject
            .berth(&["exec", &c, "ln", "-s", "/srv/a", "/tmp/to-a"])
            .ok();
        subject
            .berth(&["cp", "-L", &into("/tmp/to-a"), &shown("followed")])
            .ok();
        assert_eq!(
            std::fs::read_to_string(out_path("followed/b.txt")).unwrap(),
            "deep\n"
        );
        let escaped_out =
            subject.berth(&["cp", &into(&format!("/tmp/escape/{marker}")), &shown("m")]);
        escaped_out.ok();
        assert_eq!(std::fs::read_to_string(out_path("m")).unwrap(), "hello\n");

        // Tar streams: `-` as DEST writes one, as SRC reads one into a directory.
        let streamed = subject.berth(&["cp", &into("/srv/a/b.txt"), "-"]).ok();
        let mut archive = tar::Archive::new(streamed.stdout.as_bytes());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["b.txt"], "{backend}");
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(6);
        header.set_mode(0o644);
        tar.append_data(&mut header, "streamed.txt", &b"piped\n"[..])
            .unwrap();
        let sent = with_stdin(
            &subject,
            &["cp", "-", &into("/tmp")],
            &tar.into_inner().unwrap(),
        );
        assert_eq!(sent.code, 0, "{backend}: {sent:?}");
        assert_eq!(cat("/tmp/streamed.txt"), "piped\n", "{backend}");

        // What docker refuses, with its reasons.
        let missing = subject.berth(&["cp", &into("/nope"), &shown("x")]);
        assert_eq!(missing.code, 66, "{backend}: {missing:?}");
        let no_parent = subject.berth(&["cp", &hello, &into("/nope/deeper")]);
        assert_eq!(no_parent.code, 66, "{backend}: {no_parent:?}");
        let dir_onto_file = subject.berth(&["cp", &tree, &into("/tmp/hello.txt")]);
        assert_eq!(dir_onto_file.code, 64, "{backend}: {dir_onto_file:?}");

        // A stopped container's files are there to copy too, and what was copied in stays.
        subject.berth(&["stop", "-t", "1", &c]).ok();
        subject.berth(&["cp", &hello, &into("/stopped.txt")]).ok();
        subject
            .berth(&["cp", &into("/srv/a/b.txt"), &shown("from-stopped")])
            .ok();
        assert_eq!(
            std::fs::read_to_string(out_path("from-stopped")).unwrap(),
            "deep\n"
        );
        subject.berth(&["start", &c]).ok();
        assert_eq!(cat("/stopped.txt"), "hello\n", "{backend}");
        subject.berth(&["rm", "-f", &c]).ok();
    }
    let both_host = BerthEnv::new("").berth(&["cp", "/etc/hostname", "/tmp/x"]);
    assert_eq!(both_host.code, 64, "{both_host:?}");
}

/// An import shows its layers as a pull does: a bar per layer and the total on a terminal,
/// nothing with `-q`.
#[test]
fn imports_show_each_layer_wherever_import_is_claimed() {
    let dir = tempfile::tempdir().unwrap();
    for subject in Subject::all() {
        if !subject.claims("image-import") {
            continue;
        }
        // A layer of each backend's own, so a daemon two subjects share loads it anew.
        let tag = format!(
            "berth-test/progress-{}:{}",
            subject.backend,
            std::process::id()
        );
        let archive = dir.path().join(format!("{}.tar", subject.backend));
        let layers = [
            archives::layer(true, &[]),
            archives::layer(false, &[("marker", &tag)]),
        ];
        archives::docker_archive(&archive, &tag, &layers, None);
        let archive = archive.display().to_string();
        let import = ["image", "--backend", subject.backend, "import"];
        let mut terminal = Terminal::spawn(
            subject.env.command(&[&import[..], &[&archive]].concat()),
            30,
            140,
        );
        terminal.expect("Loaded image");
        assert_eq!(
            terminal.wait(),
            0,
            "{}: {}",
            subject.backend,
            terminal.transcript
        );
        for drawn in ["Loading layer", "total", "[="] {
            assert!(
                terminal.transcript.contains(drawn),
                "{}: {drawn:?} not drawn:\n{}",
                subject.backend,
                terminal.transcript
            );
        }
        let quiet = subject
            .berth(&[&import[..], &["-q", &archive]].concat())
            .ok();
        assert_eq!(quiet.stderr, "", "{}: {quiet:?}", subject.backend);
        subject
            .berth(&["image", "--backend", subject.backend, "rm", &tag])
            .ok();
    }
}

/// `inspect --json` of `name`, asked again until `done` holds (at most 30 s); panics if it
/// never does.
#[track_caller]
fn inspect_until(
    subject: &Subject,
    name: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let info = subject.berth(&["inspect", name]).ok().json()[0].clone();
        if done(&info) {
            return info;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}: {name} never got there: {info}",
            subject.backend
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Docker's restart policies everywhere (the engine keeps them where the backend does not):
/// `on-failure:3` restarts a failing container three times and then leaves it, with the
/// count in `inspect` and every run's output in its log; `always` restarts a clean exit, and
/// a user's stop is final.
#[test]
fn restart_policies_work_wherever_they_are_claimed() {
    for subject in Subject::all() {
        assert!(subject.claims("restart-policy"), "{}", subject.backend);
        let failing = subject.name("on-failure");
        subject
            .berth(&[
                "run",
                "-d",
                "--backend",
                subject.backend,
                "--name",
                &failing,
                "--restart",
                "on-failure:3",
                subject.image,
                "sh",
                "-c",
                "echo ran; exit 1",
            ])
            .ok();
        let done = inspect_until(&subject, &failing, |i| {
            i["state"] == "stopped" && i["restart_count"] == 3
        });
        assert_eq!(done["exit_code"], 1, "{}: {done}", subject.backend);
        // Long past the next back-off (800 ms): no fourth restart.
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let after = subject.berth(&["inspect", &failing]).ok().json()[0].clone();
        assert_eq!(
            (&after["state"], &after["restart_count"]),
            (&serde_json::json!("stopped"), &serde_json::json!(3)),
            "{}: {after}",
            subject.backend
        );
        let logs = subject.berth(&["logs", &failing]).ok().stdout;
        assert_eq!(logs, "ran\n".repeat(4), "{}", subject.backend);

        let always = subject.name("always");
        subject
            .berth(&[
                "run",
                "-d",
                "--backend",
                subject.backend,
                "--name",
                &always,
                "--restart",
                "always",
                subject.image,
                "sh",
                "-c",
                "sleep 0.2",
            ])
            .ok();
        inspect_until(&subject, &always, |i| {
            i["restart_count"].as_u64() >= Some(2)
        });
        subject.berth(&["stop", "-t", "1", &always]).ok();
        let stopped = subject.berth(&["inspect", &always]).ok().json()[0].clone();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let later = subject.berth(&["inspect", &always]).ok().json()[0].clone();
        assert_eq!(later["state"], "stopped", "{}: {later}", subject.backend);
        assert_eq!(
            later["restart_count"], stopped["restart_count"],
            "{}: restarted after a stop: {later}",
            subject.backend
        );
        subject.berth(&["rm", "-f", &failing, &always]).ok();
    }
}

#[test]
fn a_private_registry_is_pulled_from_after_login_wherever_pull_is_claimed() {
    // Basic auth (an htpasswd registry), then bearer tokens from a token service.
    for bearer in [false, true] {
        let registry = OwnRegistry::guarded(Guard {
            user: Some(("alice", "s3cret")),
            bearer,
            ..Guard::default()
        });
        for subject in Subject::all() {
            pulls_after_login(&subject, &registry);
        }
        if let Some(tokens) = &registry.tokens {
            let asked = tokens.requests.lock().unwrap().join("\n");
            assert!(asked.contains("account=alice"), "tokens asked for: {asked}");
        }
    }
}

fn pulls_after_login(subject: &Subject, registry: &OwnRegistry) {
    let server = registry.address.as_str();
    let backend = subject.backend;
    let login = |password: &str| {
        let args = ["login", "-u", "alice", "--password-stdin", server];
        with_stdin(subject, &args, format!("{password}\n").as_bytes())
    };
    assert!(subject.claims("image-pull"), "{backend}");
    let image = format!("{server}/private/{backend}:1");
    let creds = ["--dest-tls-verify=false", "--dest-creds", "alice:s3cret"];
    push_with(&image, &format!("private-{backend}"), &creds);
    let pull = || subject.berth(&["image", "--backend", backend, "pull", "-q", &image]);
    let advice = format!("berth login {server}");

    let anonymous = pull();
    assert_eq!(anonymous.code, 77, "{backend}: {anonymous:?}");
    assert!(
        anonymous.stderr.contains(&advice),
        "{backend}: {anonymous:?}"
    );

    let config = subject.env.docker_config_dir().join("config.json");
    let wrong = login("wrong");
    assert_eq!(wrong.code, 77, "{backend}: {wrong:?}");
    assert!(wrong.stderr.contains("alice"), "{backend}: {wrong:?}");
    assert!(
        !config.exists(),
        "{backend}: a refused login stores nothing"
    );

    let logged_in = login("s3cret").ok();
    assert!(
        logged_in.stdout.contains("Login Succeeded"),
        "{logged_in:?}"
    );
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert!(stored["auths"][server]["auth"].is_string(), "{stored}");

    pull().ok();
    let ran = subject
        .berth(&["run", "--rm", "--backend", backend, &image])
        .ok();
    assert!(
        ran.stdout.contains(&format!("private-{backend}")),
        "{backend}: {ran:?}"
    );
    subject
        .berth(&["image", "--backend", backend, "rm", &image])
        .ok();

    let out = subject.berth(&["logout", server]).ok();
    assert!(out.stdout.contains("Removing login credentials"), "{out:?}");
    let again = pull();
    assert_eq!(again.code, 77, "{backend}: logged out: {again:?}");
    let twice = subject.berth(&["logout", server]).ok();
    assert!(twice.stdout.contains("Not logged in"), "{twice:?}");
}
