//! Pods on the native backend, with real namespaces, a real infra process and the default
//! bridge network: apps share localhost, hostname and IPC; removing the pod leaves nothing.

use berth_tests::env::{BerthEnv, ended, killed_at};

const IMAGE: &str = "busybox:local";

fn env() -> BerthEnv {
    BerthEnv::new("").with_busybox()
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
    let env = env();
    let id = env
        .berth(&["pod", "create", "--name", "web", "--hostname", "podhost"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let pod = inspect(&env, "web");
    assert_eq!(pod["state"], "running", "{pod}");
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
        let first = namespace_in(&env, "web", kind);
        assert_eq!(first, namespace_in(&env, "web", kind), "{kind}");
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

    let apps = inspect(&env, "web")["apps"].clone();
    assert_eq!(apps.as_array().unwrap().len(), 1, "{apps}");
    assert_eq!(apps[0]["name"], "server");
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
    for _ in 0..100 {
        if inspect(&env, "p")["state"] == "dead" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
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
