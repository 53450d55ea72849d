//! Pods on the native backend, with real namespaces, a real infra process and the default
//! bridge network: apps share localhost, hostname and IPC; removing the pod leaves nothing.

use berth_tests::env::{BerthEnv, ended, killed_at};

const IMAGE: &str = "busybox:local";

fn env() -> BerthEnv {
    BerthEnv::new("").with_busybox()
}

/// Asks `done` again (for up to 2 s) until it holds: a state another process reaches.
fn settle(done: impl Fn() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn inspect(env: &BerthEnv, pod: &str) -> serde_json::Value {
    env.berth(&["pod", "inspect", pod]).ok().json()[0].clone()
}

/// `readlink /proc/self/ns/KIND` inside a new app of `pod`.
fn namespace_in(env: &BerthEnv, pod: &str, kind: &str) -> String {
    let path = format!("/proc/self/ns/{kind}");
    env.berth(&["run", "--rm", "--pod", pod, IMAGE, "readlink", &path])
        .ok()
        .stdout
        .trim()
        .to_string()
}

#[test]
fn apps_share_localhost_hostname_and_ipc_and_removal_leaves_nothing() {
    apps_share_and_removal_leaves_nothing(&env(), "native");
}

/// The same flow on containerd: its tasks join the pod's namespaces through the runtime
/// spec's namespace paths.
#[test]
fn on_containerd_apps_share_localhost_hostname_and_ipc_and_removal_leaves_nothing() {
    let env = berth_tests::containerd::containerd_env("");
    let server = apps_share_and_removal_leaves_nothing(&env, "containerd");
    // The namespace is this test process's, shared with its other tests: look for this app.
    for listing in [
        berth_tests::containerd::ctr(&["containers", "ls", "-q"]),
        berth_tests::containerd::ctr(&["tasks", "ls", "-q"]),
    ] {
        assert!(
            !listing.contains(&server),
            "the app is left in containerd: {listing}"
        );
    }
}

/// The flow on `backend`; the id of its long-running app.
fn apps_share_and_removal_leaves_nothing(env: &BerthEnv, backend: &str) -> String {
    let id = env
        .berth(&[
            "pod",
            "create",
            "--name",
            "web",
            "--hostname",
            "podhost",
            "--backend",
            backend,
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    let pod = inspect(env, "web");
    assert_eq!(pod["state"], "running", "{pod}");
    assert_eq!(pod["backend"], backend, "{pod}");
    let infra = pod["infra_pid"].as_u64().unwrap();
    assert!(pod["networks"][0]["address"].is_string(), "{pod}");

    // App A serves on the pod's loopback; app B reaches it there.
    env.berth(&[
        "run",
        "-d",
        "--pod",
        "web",
        "--name",
        "server",
        IMAGE,
        "sh",
        "-c",
        "mkdir -p /www && echo from-a > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www",
    ])
    .ok();
    let mut fetched = String::new();
    for _ in 0..50 {
        let run = env.berth(&[
            "run",
            "--rm",
            "--pod",
            "web",
            IMAGE,
            "wget",
            "-qO-",
            "http://127.0.0.1:8080/",
        ]);
        if run.code == 0 {
            fetched = run.stdout;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(fetched, "from-a\n");
    let hostname = env
        .berth(&["run", "--rm", "--pod", "web", IMAGE, "hostname"])
        .ok();
    assert_eq!(hostname.stdout, "podhost\n");
    // One IPC, UTS and network namespace for every app: the infra process's, not the host's.
    for kind in ["ipc", "uts", "net"] {
        let first = namespace_in(env, "web", kind);
        assert_eq!(first, namespace_in(env, "web", kind), "{kind}");
        let host = std::fs::read_link(format!("/proc/self/ns/{kind}")).unwrap();
        assert_ne!(first, host.display().to_string(), "{kind}");
        let infra_ns = std::fs::read_link(format!("/proc/{infra}/ns/{kind}")).ok();
        if kind != "net" {
            assert_eq!(
                Some(first.clone()),
                infra_ns.map(|p| p.display().to_string())
            );
        }
    }
    // An app's own network flags are refused: the network is the pod's.
    let own = env.berth(&["run", "--rm", "--pod", "web", "-p", "80", IMAGE, "true"]);
    assert_eq!(own.code, 64, "{own:?}");

    let apps = inspect(env, "web")["apps"].clone();
    assert_eq!(apps.as_array().unwrap().len(), 1, "{apps}");
    assert_eq!(apps[0]["name"], "server");
    let server = apps[0]["id"].as_str().unwrap().to_string();
    let placed = env.berth(&["inspect", &server]).ok().json();
    assert_eq!(placed[0]["backend"], backend, "apps go where their pod is");
    // A running app: removal needs -f.
    let refused = env.berth(&["pod", "rm", "web"]);
    assert_eq!(refused.code, 73, "{refused:?}");
    env.berth(&["pod", "rm", "-f", "web"]).ok();

    assert_eq!(
        env.berth(&["pod", "ls", "--json"]).ok().json(),
        serde_json::json!([])
    );
    assert_eq!(
        env.berth(&["ps", "-a", "--json"]).ok().json(),
        serde_json::json!([])
    );
    assert!(
        ended(infra),
        "the infra process is gone: {:?}",
        std::fs::read_to_string(format!("/proc/{infra}/stat"))
    );
    let run = env.run_dir();
    for file in [
        run.join("pod-namespaces").join(format!("{id}.ipc")),
        run.join("netns").join(&id),
    ] {
        assert!(!file.exists(), "{}", file.display());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&id), "a mount of the pod remains");
    let gc = env.berth(&["gc", "--dry-run", "--json"]).ok().json();
    assert_eq!(gc["removed"], serde_json::json!([]), "{gc}");
    server
}

#[test]
fn a_pod_whose_infra_process_was_killed_is_dead_and_takes_no_apps() {
    let env = env();
    env.berth(&["pod", "create", "--name", "p"]).ok();
    let infra = inspect(&env, "p")["infra_pid"].as_u64().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-9", &infra.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    settle(|| inspect(&env, "p")["state"] == "dead");
    assert_eq!(inspect(&env, "p")["state"], "dead");
    let app = env.berth(&["run", "--rm", "--pod", "p", IMAGE, "true"]);
    assert_eq!(app.code, 73, "{app:?}");
    assert!(app.stderr.contains("pod rm -f p"), "{app:?}");
    // Names are unique among pods; rm then frees it.
    let again = env.berth(&["pod", "create", "--name", "p"]);
    assert_eq!(again.code, 73, "{again:?}");
    env.berth(&["pod", "rm", "p"]).ok();
    env.berth(&["pod", "create", "--name", "p"]).ok();
    env.berth(&["pod", "rm", "-f", "p"]).ok();
}

/// Live `__pod-infra` processes of this installation's pod `id`.
fn infra_processes(id: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c).into_owned();
                c.contains("__pod-infra") && c.contains(id)
            }) && !ended(e.file_name().to_string_lossy().parse().unwrap_or(0))
        })
        .count()
}

#[test]
fn a_pod_create_or_removal_killed_at_any_step_is_finished_by_gc() {
    for point in ["pod.create.recorded", "pod.create.infra"] {
        let env = env();
        killed_at(&env, point, &["pod", "create", "--name", "half"]);
        let id = inspect(&env, "half")["id"].as_str().unwrap().to_string();
        assert_eq!(inspect(&env, "half")["state"], "creating");
        let gc = env.berth(&["gc", "--json"]).ok().json();
        assert_eq!(gc["failed"], serde_json::json!([]), "{point}: {gc}");
        assert!(
            gc["removed"].to_string().contains("pod half"),
            "{point}: {gc}"
        );
        assert_eq!(
            env.berth(&["pod", "ls", "--json"]).ok().json(),
            serde_json::json!([])
        );
        assert_eq!(infra_processes(&id), 0, "{point}");
        assert!(!env.run_dir().join("netns").join(&id).exists(), "{point}");
        let again = env.berth(&["gc", "--dry-run", "--json"]).ok().json();
        assert_eq!(again["removed"], serde_json::json!([]), "{point}: {again}");
        env.berth(&["pod", "create", "--name", "half"]).ok();
        env.berth(&["pod", "rm", "-f", "half"]).ok();
    }
    let env = env();
    env.berth(&["pod", "create", "--name", "busy"]).ok();
    let id = inspect(&env, "busy")["id"].as_str().unwrap().to_string();
    env.berth(&["run", "-d", "--pod", "busy", IMAGE, "sleep", "300"])
        .ok();
    killed_at(&env, "pod.remove.marked", &["pod", "rm", "-f", "busy"]);
    assert_eq!(inspect(&env, "busy")["state"], "removing");
    env.berth(&["gc"]).ok();
    assert_eq!(
        env.berth(&["pod", "ls", "--json"]).ok().json(),
        serde_json::json!([])
    );
    assert_eq!(
        env.berth(&["ps", "-a", "--json"]).ok().json(),
        serde_json::json!([])
    );
    assert_eq!(infra_processes(&id), 0);
}

/// Writes `name` with `text` in the env's directory; its path.
fn write(env: &BerthEnv, name: &str, text: &str) -> String {
    let path = env.dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The state of app `name` in `pod inspect`.
fn app_state(env: &BerthEnv, pod: &str, name: &str) -> serde_json::Value {
    let pod = inspect(env, pod);
    pod["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no app {name}: {pod}"))
        .clone()
}

#[test]
fn a_manifest_pod_runs_its_apps_independently_and_enter_chooses_one() {
    manifest_pod_flow(&env(), "native");
}

#[test]
fn on_containerd_a_manifest_pod_runs_its_apps_independently_and_enter_chooses_one() {
    manifest_pod_flow(&berth_tests::containerd::containerd_env(""), "containerd");
}

fn manifest_pod_flow(env: &BerthEnv, backend: &str) {
    let manifest = write(
        env,
        "pod.toml",
        &r#"
name = "shop"
hostname = "shop"
backend = "BACKEND"

[[app]]
image = "busybox:local"
command = ["sh", "-c", "echo ready > /tmp/mark; exec sleep 300"]

[[app]]
name = "batch"
image = "busybox:local"
command = ["sh", "-c", "exit 7"]
"#
        .replace("BACKEND", backend),
    );
    env.berth(&["pod", "run", "--manifest", &manifest]).ok();
    let pod = inspect(env, "shop");
    assert_eq!(pod["state"], "running", "{pod}");
    // The first app is named after its image (rkt's rule), the second as the manifest says.
    let names: Vec<&str> = pod["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["busybox", "batch"], "{pod}");
    // One app exiting leaves the other, and the pod, running; its exit code is shown.
    settle(|| app_state(env, "shop", "batch")["state"] == "stopped");
    assert_eq!(app_state(env, "shop", "batch")["exit_code"], 7);
    assert_eq!(app_state(env, "shop", "busybox")["state"], "running");
    assert_eq!(inspect(env, "shop")["state"], "running");
    // Logs are per app: its container's.
    let batch = app_state(env, "shop", "batch")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(env.berth(&["logs", &batch]).ok().stdout, "");

    // `enter` needs --app when there are several; it runs in the chosen app's filesystem
    // with the pod's hostname, and returns the command's exit code.
    let ambiguous = env.berth(&["pod", "enter", "shop", "true"]);
    assert_eq!(ambiguous.code, 64, "{ambiguous:?}");
    assert!(ambiguous.stderr.contains("--app"), "{ambiguous:?}");
    let entered = env
        .berth(&[
            "pod",
            "enter",
            "--app",
            "busybox",
            "shop",
            "sh",
            "-c",
            "cat /tmp/mark; hostname",
        ])
        .ok();
    assert_eq!(entered.stdout, "ready\nshop\n");
    let code = env.berth(&[
        "pod", "enter", "--app", "busybox", "shop", "sh", "-c", "exit 4",
    ]);
    assert_eq!(code.code, 4, "{code:?}");
    let missing = env.berth(&["pod", "enter", "--app", "nope", "shop", "true"]);
    assert_eq!(missing.code, 66, "{missing:?}");

    // Stop ends every app and the infra process; start brings the pod and its apps back.
    let infra = inspect(env, "shop")["infra_pid"].as_u64().unwrap();
    env.berth(&["pod", "stop", "-t", "1", "shop"]).ok();
    let stopped = inspect(env, "shop");
    assert_eq!(stopped["state"], "exited", "{stopped}");
    assert!(stopped["exited"].is_string(), "{stopped}");
    assert_eq!(app_state(env, "shop", "busybox")["state"], "stopped");
    assert!(ended(infra));
    let id = stopped["id"].as_str().unwrap().to_string();
    assert!(!env.run_dir().join("netns").join(&id).exists());
    env.berth(&["pod", "start", "shop"]).ok();
    assert_eq!(inspect(env, "shop")["state"], "running");
    assert_eq!(app_state(env, "shop", "busybox")["state"], "running");
    let entered = env
        .berth(&[
            "pod",
            "enter",
            "--app",
            "busybox",
            "shop",
            "cat",
            "/tmp/mark",
        ])
        .ok();
    assert_eq!(entered.stdout, "ready\n", "the app's own filesystem, kept");
    // --force kills without the grace period: a process ignoring SIGTERM ends at once.
    env.berth(&["pod", "stop", "--force", "-t", "300", "shop"])
        .ok();
    assert_eq!(inspect(env, "shop")["state"], "exited");
    env.berth(&["pod", "rm", "shop"]).ok();
    assert_eq!(
        env.berth(&["ps", "-a", "--json"]).ok().json(),
        serde_json::json!([])
    );
}

#[test]
fn a_prepared_pod_starts_later_and_runs_rkts_rules_before_anything_exists() {
    let env = env();
    let two_alike = write(
        &env,
        "alike.toml",
        "[[app]]\nimage = \"busybox:local\"\n\n[[app]]\nimage = \"busybox:local\"\n",
    );
    let dup = env.berth(&["pod", "prepare", "--manifest", &two_alike]);
    assert_eq!(dup.code, 64, "{dup:?}");
    assert!(dup.stderr.contains("\"busybox\": multiple apps"), "{dup:?}");
    let missing = write(&env, "missing.toml", "[[app]]\nimage = \"nothing:here\"\n");
    let absent = env.berth(&["pod", "prepare", "--manifest", &missing]);
    assert_eq!(absent.code, 66, "{absent:?}");
    assert_eq!(
        env.berth(&["pod", "ls", "--json"]).ok().json(),
        serde_json::json!([]),
        "refused manifests record nothing"
    );

    let manifest = write(
        &env,
        "later.toml",
        "name = \"later\"\n[[app]]\nname = \"main\"\nimage = \"busybox:local\"\ncommand = [\"sleep\", \"300\"]\n",
    );
    let id = env
        .berth(&["pod", "prepare", "--manifest", &manifest])
        .ok()
        .stdout
        .trim()
        .to_string();
    let prepared = inspect(&env, &id);
    assert_eq!(prepared["state"], "prepared", "{prepared}");
    assert_eq!(prepared["apps"][0]["state"], "prepared");
    assert!(prepared["infra_pid"].is_null(), "{prepared}");
    assert_eq!(
        env.berth(&["ps", "-a", "--json"]).ok().json(),
        serde_json::json!([]),
        "no container before the start"
    );
    let enter = env.berth(&["pod", "enter", "later", "true"]);
    assert_eq!(enter.code, 73, "{enter:?}");
    env.berth(&["pod", "start", &id[..12]]).ok();
    assert_eq!(inspect(&env, "later")["state"], "running");
    assert_eq!(app_state(&env, "later", "main")["state"], "running");
    env.berth(&["pod", "enter", "later", "true"]).ok();
    env.berth(&["pod", "rm", "-f", "later"]).ok();
}

#[test]
fn app_environment_and_mounts_follow_rkts_precedence() {
    use berth_tests::archives::{docker_archive, layer};
    let env = env();
    // An image whose config sets MARKER=envimg:1.
    let archive = env.dir.path().join("image.tar");
    docker_archive(&archive, "envimg:1", &[layer(true, &[])], None);
    env.berth(&["image", "import", &archive.display().to_string()])
        .ok();
    let shared = env.dir.path().join("shared");
    let own = env.dir.path().join("own");
    for (dir, text) in [(&shared, "pod-wide"), (&own, "the app's")] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("which"), text).unwrap();
    }
    write(&env, "pod.env", "FROM_FILE=file\nOVERRIDDEN=file\n");
    let manifest = write(
        &env,
        "env.toml",
        &format!(
            r#"
name = "envs"
mounts = ["{shared}:/data", "{shared}:/also"]
env-file = ["pod.env"]

[[app]]
name = "show"
image = "envimg:1"
mounts = ["{own}:/data"]
env = {{ OVERRIDDEN = "explicit" }}
command = ["sh", "-c", "echo $MARKER $INHERITED $FROM_FILE $OVERRIDDEN; cat /data/which /also/which"]
"#,
            shared = shared.display(),
            own = own.display()
        ),
    );
    // MARKER is the image's: inherited variables never override it, but fill what is unset.
    let run = env
        .command(&["pod", "run", "--inherit-env", "--manifest", &manifest])
        .env("MARKER", "inherited")
        .env("INHERITED", "inherited")
        .env("OVERRIDDEN", "inherited")
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    let app = app_state(&env, "envs", "show")["id"]
        .as_str()
        .unwrap()
        .to_string();
    settle(|| app_state(&env, "envs", "show")["state"] == "stopped");
    assert_eq!(
        env.berth(&["logs", &app]).ok().stdout,
        "envimg:1 inherited file explicit\nthe app'spod-wide",
        "image < inherited < env file < explicit; the app's /data over the pod's"
    );
    // Without --inherit-env nothing of this process's environment gets in.
    env.berth(&["pod", "rm", "-f", "envs"]).ok();
    let run = env
        .command(&["pod", "run", "--manifest", &manifest])
        .env("INHERITED", "inherited")
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    let app = app_state(&env, "envs", "show")["id"]
        .as_str()
        .unwrap()
        .to_string();
    settle(|| app_state(&env, "envs", "show")["state"] == "stopped");
    assert!(
        env.berth(&["logs", &app])
            .ok()
            .stdout
            .starts_with("envimg:1 file explicit\n")
    );
    env.berth(&["pod", "rm", "-f", "envs"]).ok();
}

#[test]
fn images_for_another_os_or_arch_are_refused_by_rkts_table() {
    use berth_tests::archives::{docker_archive_with_config, layer, sha256_hex};
    let env = env();
    for (tag, os, arch, needle) in [
        ("win:1", "windows", "amd64", "bad os \"windows\""),
        (
            "riscv:1",
            "linux",
            "riscv64",
            "bad arch \"riscv64\" for linux",
        ),
    ] {
        let layers = [layer(true, &[])];
        let config = serde_json::json!({
            "os": os,
            "architecture": arch,
            "config": {"Cmd": ["true"]},
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha256_hex(&layers[0]))]},
        });
        let archive = env.dir.path().join("image.tar");
        docker_archive_with_config(&archive, tag, &layers, config.to_string().as_bytes());
        env.berth(&["image", "import", &archive.display().to_string()])
            .ok();
        let manifest = write(&env, "arch.toml", &format!("[[app]]\nimage = \"{tag}\"\n"));
        let refused = env.berth(&["pod", "prepare", "--manifest", &manifest]);
        assert_eq!(refused.code, 64, "{refused:?}");
        assert!(refused.stderr.contains(needle), "{refused:?}");
    }
    assert_eq!(
        env.berth(&["pod", "ls", "--json"]).ok().json(),
        serde_json::json!([])
    );
}

#[test]
fn pod_gc_stops_a_dead_pod_and_removes_it_after_the_grace_period() {
    let env = env();
    env.berth(&["pod", "create", "--name", "doomed"]).ok();
    env.berth(&[
        "run", "-d", "--pod", "doomed", "--name", "worker", IMAGE, "sleep", "300",
    ])
    .ok();
    let pod = inspect(&env, "doomed");
    let id = pod["id"].as_str().unwrap().to_string();
    let infra = pod["infra_pid"].as_u64().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-9", &infra.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    settle(|| inspect(&env, "doomed")["state"] == "dead");
    // Within the grace period: stopped (apps, namespace files, network), kept.
    let dry = env.berth(&["pod", "gc", "--dry-run"]).ok();
    assert!(dry.stdout.contains("would stop: pod doomed"), "{dry:?}");
    assert_eq!(inspect(&env, "doomed")["state"], "dead");
    let gc = env.berth(&["pod", "gc"]).ok();
    assert!(gc.stdout.contains("stop: pod doomed"), "{gc:?}");
    assert!(!gc.stdout.contains("remove"), "{gc:?}");
    let stopped = inspect(&env, "doomed");
    assert_eq!(stopped["state"], "exited", "{stopped}");
    assert_eq!(app_state(&env, "doomed", "worker")["state"], "stopped");
    let run = env.run_dir();
    for file in [
        run.join("pod-namespaces").join(format!("{id}.ipc")),
        run.join("netns").join(&id),
    ] {
        assert!(!file.exists(), "{}", file.display());
    }
    assert!(
        !std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(&id)
    );
    // Past it: removed with its apps.
    let gc = env.berth(&["pod", "gc", "--grace-period", "0s"]).ok();
    assert!(gc.stdout.contains("remove: pod doomed"), "{gc:?}");
    assert_eq!(
        env.berth(&["pod", "ls", "--json"]).ok().json(),
        serde_json::json!([])
    );
    assert_eq!(
        env.berth(&["ps", "-a", "--json"]).ok().json(),
        serde_json::json!([])
    );
    let bad = env.berth(&["pod", "gc", "--grace-period", "soon"]);
    assert_eq!(bad.code, 64, "{bad:?}");
}

#[test]
fn a_pod_run_killed_at_any_step_is_undone_by_gc_and_a_killed_start_is_taken_down() {
    let env = env();
    let manifest = write(
        &env,
        "pod.toml",
        "name = \"half\"\n[[app]]\nimage = \"busybox:local\"\ncommand = [\"sleep\", \"300\"]\n",
    );
    for point in [
        "pod.create.recorded",
        "pod.create.infra",
        "create.backend-created",
    ] {
        killed_at(&env, point, &["pod", "run", "--manifest", &manifest]);
        let id = inspect(&env, "half")["id"].as_str().unwrap().to_string();
        env.berth(&["gc"]).ok();
        env.berth(&["pod", "gc", "--grace-period", "0s"]).ok();
        assert_eq!(
            env.berth(&["pod", "ls", "--json"]).ok().json(),
            serde_json::json!([]),
            "{point}"
        );
        assert_eq!(
            env.berth(&["ps", "-a", "--json"]).ok().json(),
            serde_json::json!([]),
            "{point}"
        );
        assert_eq!(infra_processes(&id), 0, "{point}");
    }
    // A prepared pod whose start was killed stays prepared, with nothing of the start left.
    let id = env
        .berth(&["pod", "prepare", "--manifest", &manifest])
        .ok()
        .stdout
        .trim()
        .to_string();
    killed_at(&env, "pod.create.infra", &["pod", "start", "half"]);
    assert_eq!(infra_processes(&id), 1);
    let gc = env.berth(&["gc"]).ok();
    assert!(gc.stdout.contains("did not finish"), "{gc:?}");
    assert_eq!(infra_processes(&id), 0);
    assert_eq!(inspect(&env, "half")["state"], "prepared");
    env.berth(&["pod", "start", "half"]).ok();
    assert_eq!(app_state(&env, "half", "busybox")["state"], "running");
    env.berth(&["pod", "rm", "-f", "half"]).ok();
}

#[test]
fn a_pods_memory_and_cpu_limits_hold_all_its_apps_together() {
    pod_limits_flow(&env(), "native");
}

#[test]
fn on_containerd_a_pods_memory_and_cpu_limits_hold_all_its_apps_together() {
    pod_limits_flow(&berth_tests::containerd::containerd_env(""), "containerd");
}

fn pod_limits_flow(env: &BerthEnv, backend: &str) {
    env.berth(&[
        "pod",
        "create",
        "--name",
        "capped",
        "--memory",
        "32m",
        "--cpus",
        "0.5",
        "--backend",
        backend,
    ])
    .ok();
    let pod = inspect(env, "capped")["id"].as_str().unwrap().to_string();
    let holder = env
        .berth(&[
            "run",
            "-d",
            "--pod",
            "capped",
            "--name",
            "holder",
            IMAGE,
            "sh",
            "-c",
            "dd if=/dev/zero of=/dev/shm/held bs=1M count=20 2>/dev/null; exec sleep 300",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    let pid = env.berth(&["inspect", &holder]).ok().json()[0]["pid"]
        .as_u64()
        .unwrap();
    // The app's cgroup is under the pod's, and the pod's has the limits.
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let memory = cgroups
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, path)| path.to_string()))
        .unwrap();
    let suffix = format!("/pod-{pod}/{holder}");
    assert!(memory.ends_with(&suffix), "{cgroups}");
    let pod_dir = memory.trim_end_matches(&format!("/{holder}")).to_string();
    let read = |file: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/{file}")).unwrap();
    assert_eq!(
        read(&format!("memory{pod_dir}/memory.limit_in_bytes")),
        "33554432\n"
    );
    assert_eq!(read(&format!("cpu{pod_dir}/cpu.cfs_quota_us")), "50000\n");
    // Let the holder fill its 20 MiB first.
    for _ in 0..100 {
        let used: u64 = read(&format!("memory{pod_dir}/memory.usage_in_bytes"))
            .trim()
            .parse()
            .unwrap();
        if used > 20 << 20 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // 20 MiB more is within any one app's means but not within the pod's 32 MiB.
    let script = "dd if=/dev/zero of=/dev/shm/more bs=1M count=20 2>/dev/null; echo dd=$?";
    let second = env
        .berth(&["run", "--rm", "--pod", "capped", IMAGE, "sh", "-c", script])
        .ok();
    assert_eq!(second.stdout, "dd=137\n", "{second:?}");
    let alone = env
        .berth(&[
            "run",
            "--rm",
            "--backend",
            backend,
            IMAGE,
            "sh",
            "-c",
            script,
        ])
        .ok();
    assert_eq!(alone.stdout, "dd=0\n");
    // The pod's cgroup goes with the pod.
    env.berth(&["pod", "rm", "-f", "capped"]).ok();
    assert!(!std::path::Path::new(&format!("/sys/fs/cgroup/memory{pod_dir}")).exists());
    let bad = env.berth(&["pod", "create", "--memory", "lots"]);
    assert_eq!(bad.code, 64, "{bad:?}");
}

#[test]
fn a_backend_that_does_not_claim_pods_is_refused_naming_the_capability() {
    let env = BerthEnv::new("[backends.docker]\ntype = \"docker\"\n\n");
    let refused = env.berth(&["pod", "create", "--name", "p", "--backend", "docker"]);
    assert_eq!(refused.code, 76, "{refused:?}");
    assert!(
        refused.stderr.contains("does not support pods"),
        "{refused:?}"
    );
    assert_eq!(
        env.berth(&["pod", "ls", "--json"]).ok().json(),
        serde_json::json!([])
    );
}

#[test]
fn with_share_pid_apps_see_each_others_processes() {
    shared_pid_flow(&env(), "native");
}

#[test]
fn on_containerd_with_share_pid_apps_see_each_others_processes() {
    shared_pid_flow(&berth_tests::containerd::containerd_env(""), "containerd");
}

fn shared_pid_flow(env: &BerthEnv, backend: &str) {
    let sees_sleeper = |pod: &str| {
        let ps = env
            .berth(&["run", "--rm", "--pod", pod, IMAGE, "ps", "-o", "pid,args"])
            .ok()
            .stdout;
        ps.contains("sleep 301")
    };
    for (pod, share) in [("apart", false), ("together", true)] {
        let mut args = vec!["pod", "create", "--name", pod, "--backend", backend];
        if share {
            args.push("--share-pid");
        }
        env.berth(&args).ok();
        env.berth(&["run", "-d", "--pod", pod, IMAGE, "sleep", "301"])
            .ok();
        assert_eq!(sees_sleeper(pod), share, "{pod}");
    }
    // PID 1 of the shared namespace is the pod's init, not an app: an app's exit leaves it.
    let init = env
        .berth(&[
            "run",
            "--rm",
            "--pod",
            "together",
            IMAGE,
            "cat",
            "/proc/1/cmdline",
        ])
        .ok()
        .stdout;
    assert!(init.contains("__pod-infra"), "{init:?}");
    let id = inspect(env, "together")["id"].as_str().unwrap().to_string();
    env.berth(&["pod", "rm", "-f", "together"]).ok();
    env.berth(&["pod", "rm", "-f", "apart"]).ok();
    assert_eq!(
        infra_processes(&id),
        0,
        "the init went with the infra process"
    );
    let pid_file = env
        .run_dir()
        .join("pod-namespaces")
        .join(format!("{id}.pid"));
    assert!(!pid_file.exists());
}

#[test]
fn an_app_marked_stop_pod_on_exit_stops_the_pod_when_it_ends() {
    exit_stops_pod_flow(&env(), "native");
}

#[test]
fn on_containerd_an_app_marked_stop_pod_on_exit_stops_the_pod_when_it_ends() {
    exit_stops_pod_flow(&berth_tests::containerd::containerd_env(""), "containerd");
}

/// `stop-pod-on-exit = true`: that app's end (its own, code 3) stops the pod, the other app
/// and the infra process with it; a stop that names another infra process (the watcher's of
/// a pod started again since) leaves a pod alone.
fn exit_stops_pod_flow(env: &BerthEnv, backend: &str) {
    let manifest = write(
        env,
        "job.toml",
        &r#"
name = "job"
backend = "BACKEND"

[[app]]
name = "keeper"
image = "busybox:local"
command = ["sh", "-c", "trap 'exit 0' TERM; sleep 300 & wait"]

[[app]]
name = "task"
image = "busybox:local"
command = ["sh", "-c", "sleep 2; exit 3"]
stop-pod-on-exit = true
"#
        .replace("BACKEND", backend),
    );
    env.berth(&["pod", "run", "--manifest", &manifest]).ok();
    let running = inspect(env, "job");
    assert_eq!(running["state"], "running", "{running}");
    let infra = running["infra_pid"].as_u64().unwrap();
    let stale = env.berth(&["pod", "stop", "--if-infra", "1:1", "job"]).ok();
    assert_eq!(stale.stdout, "", "{stale:?}");
    assert_eq!(inspect(env, "job")["state"], "running");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while inspect(env, "job")["state"] != "exited" && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let stopped = inspect(env, "job");
    assert_eq!(stopped["state"], "exited", "{stopped}");
    assert_eq!(app_state(env, "job", "task")["exit_code"], 3, "{stopped}");
    assert_eq!(
        app_state(env, "job", "keeper")["state"],
        "stopped",
        "{stopped}"
    );
    assert!(ended(infra));
    env.berth(&["pod", "rm", "job"]).ok();
}

/// `--sysctl` sets the pod's own IPC and network parameters, which its apps read; a parameter
/// of the host's is refused before anything is made.
#[test]
fn a_pods_sysctls_are_its_own_and_a_hosts_one_is_refused() {
    let env = env();
    let host_rmid = std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap();
    env.berth(&[
        "pod",
        "create",
        "--name",
        "tuned",
        "--sysctl",
        "kernel.shm_rmid_forced=1",
        "--sysctl",
        "fs.mqueue.msg_max=100",
        "--sysctl",
        "net.ipv4.ip_unprivileged_port_start=80",
    ])
    .ok();
    let read = |path: &str| {
        let out = env
            .berth(&["run", "--rm", "--pod", "tuned", IMAGE, "cat", path])
            .ok();
        out.stdout.trim().to_string()
    };
    // `pod ls -q` (and podman's `pod ps -q`) prints the ids alone.
    let id = inspect(&env, "tuned")["id"].as_str().unwrap().to_string();
    assert_eq!(
        env.berth(&["pod", "ls", "-q"]).ok().stdout,
        format!("{id}\n")
    );
    assert_eq!(
        env.berth(&["pod", "ps", "-q"]).ok().stdout,
        format!("{id}\n")
    );
    assert_eq!(read("/proc/sys/kernel/shm_rmid_forced"), "1");
    assert_eq!(read("/proc/sys/fs/mqueue/msg_max"), "100");
    assert_eq!(read("/proc/sys/net/ipv4/ip_unprivileged_port_start"), "80");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap(),
        host_rmid,
        "the host's own value is untouched"
    );
    env.berth(&["pod", "rm", "-f", "tuned"]).ok();

    let refused = env.berth(&[
        "pod",
        "create",
        "--name",
        "host",
        "--sysctl",
        "vm.swappiness=1",
    ]);
    assert_eq!(refused.code, 64, "{refused:?}");
    assert!(
        refused.stderr.contains("would change the host"),
        "{refused:?}"
    );
    assert_eq!(
        env.berth(&["pod", "ls", "--json"]).ok().json(),
        serde_json::json!([])
    );
}
