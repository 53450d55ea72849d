//! The containerd backend against the real containerd: containers through the `berth` binary
//! observed with `ctr`, images, host files, and a containerd that is not there. Each test
//! process works in a namespace of its own.

use berth_tests::bin::berth_exe;
use berth_tests::containerd::{busybox_image, containerd_env, ctr, import, namespace};

/// `berth <args> --backend containerd`-style run args.
fn run<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", "--backend", "containerd"];
    args.extend(extra);
    args
}

#[test]
fn a_container_runs_with_its_output_and_exit_code_and_leaves_nothing() {
    let env = containerd_env("");
    let mut args = run(&["--rm", busybox_image()]);
    args.extend(["sh", "-c", "echo out; echo err >&2; exit 3"]);
    let ran = env.berth(&args);
    assert_eq!(ran.code, 3, "{ran:?}");
    assert_eq!(ran.stdout, "out\n");
    assert_eq!(ran.stderr, "err\n");

    // The image's own command and env when none is given.
    let ran = env.berth(&run(&["--rm", busybox_image()])).ok();
    assert!(ran.stdout.ends_with("busybox:local\n"), "{ran:?}");

    // The hostname is the id's first 12 digits: nothing under that id is left in containerd.
    let mut args = run(&["--rm", busybox_image()]);
    args.push("hostname");
    let short_id = env.berth(&args).ok().stdout.trim().to_string();
    assert_eq!(short_id.len(), 12);
    assert_eq!(env.berth(&["ps", "-a", "-q"]).ok().stdout, "");
    for listing in [
        ctr(&["containers", "ls", "-q"]),
        ctr(&["tasks", "ls", "-q"]),
        ctr(&["snapshots", "ls"]),
    ] {
        assert!(!listing.contains(&short_id), "{listing}");
    }
}

#[test]
fn detached_lifecycle_is_what_containerd_reports() {
    let env = containerd_env("");
    let mut args = run(&[
        "-d",
        "--name",
        "web",
        "--label",
        "tier=front",
        busybox_image(),
    ]);
    // As PID 1, sh only dies of SIGTERM through its trap.
    args.extend([
        "sh",
        "-c",
        "trap 'exit 7' TERM; echo started; while :; do sleep 1 & wait; done",
    ]);
    let id = env.berth(&args).ok().stdout.trim().to_string();
    assert!(ctr(&["containers", "ls", "-q"]).contains(&id));
    let tasks = ctr(&["tasks", "ls"]);
    assert!(
        tasks
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("RUNNING")),
        "{tasks}"
    );
    let info = env.berth(&["inspect", "web", "--json"]).ok().json()[0].clone();
    assert_eq!(info["state"], "running", "{info}");
    assert_eq!(info["backend"], "containerd");
    assert_eq!(info["labels"]["tier"], "front", "{info}");
    let ps = env
        .berth(&["ps", "--filter", "label=tier=front", "-q"])
        .ok()
        .stdout;
    assert_eq!(ps.trim(), &id[..12]);

    let logs = env.berth(&["logs", "web"]).ok();
    assert_eq!(logs.stdout, "started\n");

    env.berth(&["stop", "web"]).ok();
    let info = env.berth(&["inspect", "web", "--json"]).ok().json()[0].clone();
    assert_eq!(info["state"], "stopped", "{info}");
    assert_eq!(info["exit_code"], 7, "{info}");

    // A stopped container starts again as a new task.
    env.berth(&["start", "web"]).ok();
    assert_eq!(
        env.berth(&["inspect", "web", "--json"]).ok().json()[0]["state"],
        "running"
    );
    let refused = env.berth(&["rm", "web"]);
    assert_eq!(refused.code, 73, "{refused:?}");
    env.berth(&["rm", "-f", "web"]).ok();
    assert!(!ctr(&["containers", "ls", "-q"]).contains(&id));
    assert!(!ctr(&["snapshots", "ls"]).contains(&id));
}

#[test]
fn containers_get_a_resolv_conf_the_time_zone_and_limits() {
    let env = containerd_env("");
    let mut args = run(&[
        "--rm",
        "--memory",
        "48m",
        "--env",
        "TZ=Europe/Paris",
        busybox_image(),
    ]);
    args.extend([
        "sh",
        "-c",
        "cat /etc/resolv.conf; echo $TZ; test -f /etc/localtime && echo localtime; \
         cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
    ]);
    let ran = env.berth(&args).ok();
    // The engine's resolv.conf: the host's upstream servers (loopback ones answer only in the
    // host's namespace), else Memoh's public fallback.
    let resolved = std::path::Path::new("/run/systemd/resolve/resolv.conf");
    let host = std::fs::read_to_string(if resolved.is_file() {
        resolved
    } else {
        std::path::Path::new("/etc/resolv.conf")
    })
    .unwrap_or_default();
    let mut servers: Vec<String> = host
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.starts_with("127.") && s != "::1")
        .map(|s| format!("nameserver {s}"))
        .collect();
    if servers.is_empty() {
        servers = vec!["nameserver 1.1.1.1".into(), "nameserver 8.8.8.8".into()];
    }
    let (resolv, rest) = ran
        .stdout
        .split_once("\n\n")
        .expect("a generated resolv.conf");
    assert_eq!(resolv, "# Generated by berth", "{ran:?}");
    let container_servers: Vec<&str> = rest
        .lines()
        .filter(|l| l.starts_with("nameserver"))
        .collect();
    assert_eq!(container_servers, servers, "{ran:?}");
    let mut expected = "Europe/Paris\n".to_string();
    if std::path::Path::new("/etc/localtime").exists() {
        expected.push_str("localtime\n");
    }
    expected.push_str(&format!("{}\n", 48 << 20));
    assert!(ran.stdout.ends_with(&format!("\n\n{expected}")), "{ran:?}");
    if !resolved.is_file() {
        let fallback = env.state_dir().join("resolv.conf");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&fallback).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o644);
    }
}

#[test]
fn images_are_listed_found_by_short_name_and_kept_while_used() {
    let env = containerd_env("");
    let image = |args: &[&str]| {
        let mut all = vec!["image", "--backend", "containerd"];
        all.extend(args);
        env.berth(&all)
    };
    let listed = image(&["ls", "--json"]).ok().json();
    // Tests alongside pull and import images of their own into this namespace.
    let busybox = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["names"][0] == "docker.io/library/busybox:local")
        .unwrap_or_else(|| panic!("{listed}"));
    let by_short = image(&["inspect", "busybox:local"]).ok().json();
    let by_full = image(&["inspect", "docker.io/library/busybox:local"])
        .ok()
        .json();
    assert_eq!(by_short, by_full);
    assert_eq!(by_short[0]["id"], busybox["id"]);
    assert!(busybox["size"].as_u64().unwrap() > 500_000, "{listed}");
    let missing = image(&["inspect", "busybox:nope"]);
    assert_eq!(missing.code, 66, "{missing:?}");

    // An image of its own, so containers of tests running alongside do not hold it.
    import("busybox:removable");
    env.berth(&[
        "create",
        "--backend",
        "containerd",
        "--name",
        "user",
        "busybox:removable",
    ])
    .ok();
    let refused = image(&["rm", "busybox:removable"]);
    assert_eq!(refused.code, 73, "{refused:?}");
    assert!(refused.stderr.contains("user"), "{refused:?}");
    env.berth(&["rm", "user"]).ok();
    image(&["rm", "busybox:removable"]).ok();
    assert_eq!(image(&["inspect", "busybox:removable"]).code, 66);
    assert!(!ctr(&["images", "ls", "-q"]).contains("busybox:removable"));
}

#[test]
fn a_containerd_that_is_not_there_is_a_clear_error_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    // What a killed containerd leaves: a socket file nobody listens on.
    let socket = dir.path().join("containerd.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let env = berth_tests::env::BerthEnv::new(&format!(
        "[backends.containerd]\ntype = \"containerd\"\nsocket = \"{}\"\nnamespace = \"{}\"\n",
        socket.display(),
        namespace()
    ));
    let down = env.berth(&[
        "run",
        "--rm",
        "--backend",
        "containerd",
        "busybox:local",
        "true",
    ]);
    assert_eq!(down.code, 69, "{down:?}");
    assert!(
        down.stderr.contains(&socket.display().to_string())
            && down.stderr.contains("is containerd running?"),
        "{down:?}"
    );
    assert_eq!(env.berth(&["ps", "-a", "-q"]).ok().stdout, "");
}

#[tokio::test]
async fn a_process_ignoring_sigterm_times_out_unless_forced() {
    use berth_core::{ContainerBackend, ContainerSpec, ContainerState, ErrorKind, StopOptions};
    busybox_image();
    let dir = tempfile::tempdir().unwrap();
    let store = berth_core::Store::open(dir.path().join("state"), dir.path().join("run")).unwrap();
    let config = berth_core::config::ContainerdBackendConfig {
        namespace: namespace().into(),
        ..Default::default()
    };
    let backend =
        berth_backend_containerd::ContainerdBackend::new("containerd", &config, store, berth_exe())
            .unwrap();
    let id = format!("ignorer-{}", std::process::id());
    let spec = ContainerSpec {
        name: "ignorer".into(),
        image: "busybox:local".into(),
        command: ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    };
    backend.create(&id, &spec).await.unwrap();
    backend.start(&id).await.unwrap();
    let gentle = StopOptions {
        signal: libc::SIGTERM,
        timeout: std::time::Duration::from_secs(1),
        force: false,
    };
    let e = backend.stop(&id, &gentle).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert_eq!(
        backend.inspect(&id).await.unwrap().state,
        ContainerState::Running
    );

    let forced = StopOptions {
        force: true,
        ..gentle
    };
    backend.stop(&id, &forced).await.unwrap();
    let info = backend.inspect(&id).await.unwrap();
    assert_eq!(info.state, ContainerState::Stopped);
    assert_eq!(info.exit_code, Some(137));
    backend
        .remove(&id, berth_core::RemoveOptions::default())
        .await
        .unwrap();
    assert_eq!(
        backend.inspect(&id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn exec_streams_stdin_and_output_and_reports_the_exit_code() {
    let env = containerd_env("");
    let mut args = run(&["-d", "--name", "shell", busybox_image()]);
    args.extend(["sleep", "60"]);
    env.berth(&args).ok();

    // stdin goes in, and comes back out.
    let mut cat = env
        .command(&["exec", "-i", "shell", "cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    cat.stdin
        .take()
        .unwrap()
        .write_all(b"echoed back\n")
        .unwrap();
    let cat = cat.wait_with_output().unwrap();
    assert!(cat.status.success(), "{cat:?}");
    assert_eq!(String::from_utf8_lossy(&cat.stdout), "echoed back\n");

    let ran = env.berth(&[
        "exec",
        "-e",
        "GREETING=hi",
        "-w",
        "/etc",
        "shell",
        "sh",
        "-c",
        "echo $GREETING $(pwd); echo oops >&2; exit 4",
    ]);
    assert_eq!(ran.code, 4, "{ran:?}");
    assert_eq!(ran.stdout, "hi /etc\n");
    assert_eq!(ran.stderr, "oops\n");

    let missing = env.berth(&["exec", "shell", "no-such-command"]);
    assert_eq!(missing.code, 127, "{missing:?}");
    // The container itself is untouched by its execs.
    assert_eq!(
        env.berth(&["inspect", "shell", "--json"]).ok().json()[0]["state"],
        "running"
    );

    env.berth(&["stop", "-t", "1", "shell"]).ok();
    let stopped = env.berth(&["exec", "shell", "true"]);
    assert_eq!(stopped.code, 73, "{stopped:?}");
    assert!(stopped.stderr.contains("not running"), "{stopped:?}");
}

fn versioner(grants: &str) -> String {
    format!(
        "[[plugins]]\nname = \"versioner\"\npath = \"{}\"\nworlds = [\"lifecycle-hooks\"]\n\
         grants = [{grants}]\n\n",
        berth_tests::plugins::VERSIONER.path().display()
    )
}

#[test]
fn a_granted_post_stop_hook_commits_the_container() {
    let env = containerd_env(&versioner("\"snapshots\""));
    let mut args = run(&["-d", "--name", "hooked", busybox_image()]);
    args.extend([
        "sh",
        "-c",
        "echo saved > /kept; trap 'exit 0' TERM; while :; do sleep 1 & wait; done",
    ]);
    env.berth(&args).ok();
    env.berth(&["stop", "hooked"]).ok();

    let lineage = env
        .berth(&[
            "snapshot",
            "--backend",
            "containerd",
            "lineage",
            "hooked-at-stop",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(lineage[0], "hooked-at-stop", "{lineage}");
    // The container carries on from the version: what it wrote is still there.
    env.berth(&["start", "hooked"]).ok();
    let kept = env.berth(&["exec", "hooked", "cat", "/kept"]).ok();
    assert_eq!(kept.stdout, "saved\n");
    env.berth(&["rm", "-f", "hooked"]).ok();
    env.berth(&[
        "snapshot",
        "--backend",
        "containerd",
        "rm",
        "hooked-at-stop",
    ])
    .ok();

    // Without the grant the plugin does not load, and nothing runs.
    let env = containerd_env(&versioner(""));
    let refused = env.berth(&[
        "run",
        "--rm",
        "--backend",
        "containerd",
        busybox_image(),
        "true",
    ]);
    assert_eq!(refused.code, 70, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("add \"snapshots\" to grants of [[plugins]] name = \"versioner\""),
        "{refused:?}"
    );
}

#[test]
fn archives_are_imported_unpacked_and_run() {
    use berth_tests::archives::{docker_archive, layer, oci_layout};
    let env = containerd_env("");
    let image = |args: &[&str]| {
        let mut all = vec!["image", "--backend", "containerd"];
        all.extend(args);
        env.berth(&all)
    };
    let layers = [
        layer(true, &[("etc/keep", "kept"), ("etc/gone", "deleted above")]),
        layer(false, &[("etc/.wh.gone", ""), ("etc/added", "new")]),
    ];
    let dir = tempfile::tempdir().unwrap();

    let archive = dir.path().join("docker.tar");
    docker_archive(&archive, "imported:docker", &layers, None);
    let info = image(&["import", &archive.display().to_string(), "--json"])
        .ok()
        .json();
    assert_eq!(
        info["names"][0], "docker.io/library/imported:docker",
        "{info}"
    );
    assert!(ctr(&["images", "ls", "-q"]).contains("docker.io/library/imported:docker"));
    // The image's own command, `ls /etc; echo $MARKER`, sees both layers and the whiteout
    // (and the host files berth mounts into /etc).
    let etc = |image: &str| {
        let ran = env
            .berth(&["run", "--rm", "--backend", "containerd", image])
            .ok()
            .stdout;
        let lines: Vec<String> = ran.lines().map(String::from).collect();
        assert!(
            lines.contains(&"added".into()) && lines.contains(&"keep".into()),
            "{ran}"
        );
        assert!(!lines.contains(&"gone".into()), "{ran}");
        lines.last().cloned().unwrap_or_default()
    };
    assert_eq!(etc("imported:docker"), "imported:docker");

    let layout = dir.path().join("layout");
    oci_layout(&layout, "imported:oci", &layers);
    image(&["import", &layout.display().to_string()]).ok();
    assert_eq!(etc("imported:oci"), "imported:oci");

    // A layer that does not match its config's diff id: refused, and no image is recorded.
    let bad = dir.path().join("bad.tar");
    docker_archive(
        &bad,
        "imported:bad",
        &[layer(true, &[])],
        Some(vec!["0".repeat(64)]),
    );
    let refused = image(&["import", &bad.display().to_string()]);
    assert_eq!(refused.code, 65, "{refused:?}");
    assert_eq!(image(&["inspect", "imported:bad"]).code, 66);

    image(&["rm", "imported:docker"]).ok();
    image(&["rm", "imported:oci"]).ok();
}

#[test]
fn images_are_pulled_from_a_registry_as_it_serves_them() {
    use berth_tests::registry::{OwnRegistry, closed_port, inspect, push};
    let env = containerd_env("");
    let pull = |image: &str| env.berth(&["image", "--backend", "containerd", "pull", image]);
    let registry = OwnRegistry::start();
    let image = format!("{}/team/pulled:1", registry.address);
    push(&image, "pulled");
    let served = inspect(&image);

    let pulled = pull(&image).ok();
    assert!(pulled.stderr.contains("Download complete"), "{pulled:?}");
    // The registry's own manifest is stored, so containerd shows the registry's digest.
    let listed = ctr(&["images", "ls"]);
    let line = listed.lines().find(|l| l.starts_with(&image)).unwrap();
    assert!(
        line.contains(served["Digest"].as_str().unwrap()),
        "{listed}"
    );
    let ran = env
        .berth(&["run", "--rm", "--backend", "containerd", &image])
        .ok();
    assert!(ran.stdout.ends_with("pulled\n"), "{ran:?}");
    // Pulling again is quick and changes nothing.
    pull(&image).ok();

    // A tag the registry lacks: not found, nothing recorded.
    let missing = format!("{}/team/pulled:2", registry.address);
    let refused = pull(&missing);
    assert_eq!(refused.code, 66, "{refused:?}");
    assert!(refused.stderr.contains("team/pulled:2"), "{refused:?}");

    // A layer damaged in the registry's storage: refused by digest, nothing recorded.
    let damaged = format!("{}/team/damaged:1", registry.address);
    push(&damaged, "damaged");
    let layer = inspect(&damaged)["Layers"][0].as_str().unwrap().to_string();
    let path = registry.blob_path(&layer);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let refused = pull(&damaged);
    assert_eq!(refused.code, 65, "{refused:?}");
    assert!(refused.stderr.contains(&layer), "{refused:?}");

    // A registry that is not there.
    let closed = closed_port();
    let nowhere = format!("127.0.0.1:{}/team/pulled:1", closed.port);
    let refused = pull(&nowhere);
    assert_eq!(refused.code, 69, "{refused:?}");

    let listed = ctr(&["images", "ls", "-q"]);
    for absent in [&missing, &damaged, &nowhere] {
        assert!(!listed.contains(absent.as_str()), "{listed}");
    }
    env.berth(&["image", "--backend", "containerd", "rm", &image])
        .ok();
}

#[test]
fn rm_keeps_the_snapshot_when_asked() {
    let env = containerd_env("");
    let mut args = run(&["--name", "keeper", busybox_image()]);
    args.extend(["sh", "-c", "echo kept > /etc/written"]);
    env.berth(&args).ok();
    let id = env.berth(&["inspect", "keeper"]).ok().json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    env.berth(&["rm", "--keep-snapshot", "keeper"]).ok();
    assert_eq!(env.berth(&["inspect", "keeper"]).code, 66);
    assert!(!ctr(&["containers", "ls", "-q"]).contains(&id));

    // The container's filesystem is still there under its key, with what it wrote.
    let snapshot = |args: &[&str]| {
        let mut all = vec!["snapshot", "--backend", "containerd"];
        all.extend(args);
        env.berth(&all)
    };
    let dir = snapshot(&["mount", &id]).ok().stdout.trim().to_string();
    let written = std::fs::read_to_string(std::path::Path::new(&dir).join("etc/written"));
    snapshot(&["unmount", &dir]).ok();
    assert_eq!(written.unwrap(), "kept\n");
    snapshot(&["rm", &id]).ok();
    assert!(!ctr(&["snapshots", "ls"]).contains(&id));
}

#[test]
fn a_named_user_is_looked_up_in_the_images_own_passwd() {
    use berth_tests::archives::{
        docker_archive_with_config, image_config_as, layer, named_user_archive, sha256_hex,
    };
    let env = containerd_env("");
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("user.tar");
    named_user_archive(&archive, "named-user:1");
    env.berth(&[
        "image",
        "--backend",
        "containerd",
        "import",
        &archive.display().to_string(),
    ])
    .ok();
    // Only the top layer's /etc/passwd has nobody: the snapshot is read as the merged view.
    let ran = env.berth(&run(&["--rm", "named-user:1", "sh", "-c", "id -u; id -g"]));
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(ran.stdout, "65534\n65534\n");
    // Nothing is left of the lookup: no scratch mounts, no container, no snapshot.
    assert_eq!(env.berth(&["ps", "-a", "-q"]).ok().stdout, "");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains("containerd-rootfs"), "{mountinfo}");

    // A user the image does not have: refused, and no container is left.
    let layers = [layer(true, &[("etc/passwd", "root:x:0:0::/:/bin/sh\n")])];
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256_hex(l)).collect();
    let ghost = dir.path().join("ghost.tar");
    docker_archive_with_config(
        &ghost,
        "ghost-user:1",
        &layers,
        &image_config_as(&diff_ids, "x", "ghost"),
    );
    env.berth(&[
        "image",
        "--backend",
        "containerd",
        "import",
        &ghost.display().to_string(),
    ])
    .ok();
    let refused = env.berth(&run(&["--rm", "ghost-user:1", "true"]));
    assert_eq!(refused.code, 66, "{refused:?}");
    assert!(
        refused.stderr.contains("user \"ghost\" not found"),
        "{refused:?}"
    );
    assert_eq!(env.berth(&["ps", "-a", "-q"]).ok().stdout, "");
    for image in ["named-user:1", "ghost-user:1"] {
        env.berth(&["image", "--backend", "containerd", "rm", image])
            .ok();
    }
}

#[test]
fn logs_are_interleaved_tailed_windowed_and_timestamped() {
    // The task's logging binary (berth itself) keeps each chunk with its time, as native does.
    let env = containerd_env("");
    berth_tests::logs::log_filters_flow(&env, "containerd", busybox_image());
}

/// A `cp` killed with a never-started container's snapshot mounted on its scratch directory:
/// `berth gc` takes the mount down, and the copy can be run again.
#[test]
fn a_killed_copy_leaves_a_scratch_mount_gc_takes_down() {
    let env = containerd_env("");
    let name = format!("cp-{}", std::process::id());
    env.berth(&[
        "create",
        "--backend",
        "containerd",
        "--name",
        &name,
        busybox_image(),
        "cat",
        "/copied",
    ])
    .ok();
    let source = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(source.path(), "kept\n").unwrap();
    let source = source.path().display().to_string();
    let into = format!("{name}:/copied");
    berth_tests::env::killed_at(&env, "containerd.copy.mounted", &["cp", &source, &into]);
    let scratch = env.run_dir().join("containerd-copy");
    let mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(&scratch.display().to_string())
    };
    assert!(mounted(), "the kill left the scratch mount");
    let gc = env.berth(&["gc", "--json"]).ok().json();
    assert!(gc.to_string().contains("copy mount"), "{gc}");
    assert!(!mounted(), "gc took the scratch mount down");
    env.berth(&["cp", &source, &into]).ok();
    assert_eq!(env.berth(&["start", "-a", &name]).ok().stdout, "kept\n");
    env.berth(&["rm", "-f", &name]).ok();
}

/// A task's logger removes its attach socket when the task's output ends; one SIGKILLed leaves
/// it, and gc takes it once its container is gone (never while it lives).
#[test]
fn a_killed_loggers_attach_socket_goes_with_gc_once_its_container_is_gone() {
    let env = containerd_env("");
    let name = format!("sock-{}", std::process::id());
    let id = env
        .berth(&run(&[
            "-d",
            "--name",
            &name,
            busybox_image(),
            "sleep",
            "300",
        ]))
        .ok()
        .stdout
        .trim()
        .to_string();
    let sockets = env.run_dir().join("containerd").join("attach");
    let socket = sockets.join(format!("{}.sock", &id[..24]));
    assert!(socket.exists(), "no socket at {}", socket.display());
    let log = env
        .run_dir()
        .join("containerd")
        .join(namespace())
        .join(format!("{id}.log"));
    let logger = std::fs::read_to_string(format!("{}.pid", log.display())).unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-9", logger.trim()])
        .status()
        .unwrap();
    assert!(killed.success());
    let spared = env.berth(&["gc", "--dry-run", "--json"]).ok().json();
    assert!(!spared.to_string().contains("attach socket"), "{spared}");
    env.berth(&["rm", "-f", &name]).ok();
    assert!(socket.exists(), "the killed logger could not remove it");
    let gc = env.berth(&["gc", "--json"]).ok().json();
    assert!(gc.to_string().contains("attach socket"), "{gc}");
    assert!(!socket.exists(), "gc left {}", socket.display());
}
