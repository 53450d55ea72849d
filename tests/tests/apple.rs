//! The Apple Container backend (`type = "apple"`: the Docker Engine API on socktainer's socket).
//! macOS cannot run here, so the real dockerd's socket stands in for socktainer's
//! Docker-compatible API. dockerd *can* do everything Apple's runtime cannot, so each refusal
//! below is the capability check at work, not the daemon: the same request on a `docker`
//! backend of the same daemon succeeds.

use berth_tests::docker::{busybox_image, docker_env};
use berth_tests::env::BerthEnv;

const APPLE: &str =
    "[backends.apple]\ntype = \"apple\"\nsocket = \"unix:///var/run/docker.sock\"\n";

fn apple_env() -> BerthEnv {
    docker_env(APPLE)
}

/// A running container on `backend`, named after the test process and `name`.
fn running(env: &BerthEnv, backend: &str, name: &str) -> String {
    let name = format!("bt{}-{name}", std::process::id());
    env.berth(&[
        "run",
        "-d",
        "--backend",
        backend,
        "--name",
        &name,
        busybox_image(),
        "sleep",
        "300",
    ])
    .ok();
    name
}

#[test]
fn apple_runs_containers_and_reports_its_capabilities() {
    let env = apple_env();
    let ran = env
        .berth(&[
            "run",
            "--rm",
            "--backend",
            "apple",
            busybox_image(),
            "echo",
            "from apple",
        ])
        .ok();
    assert_eq!(ran.stdout, "from apple\n");

    let backends = env.berth(&["backend", "ls", "--json"]).json();
    let apple = backends
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "apple")
        .expect("apple is listed");
    assert_eq!(apple["kind"], "apple");
    assert_eq!(apple["healthy"], true);
    let features: Vec<&str> = apple["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(features.contains(&"exec") && features.contains(&"publish-ports"));
    for lacking in [
        "snapshots",
        "commit",
        "exec-stdin",
        "exec-env",
        "exec-workdir",
        "log-filters",
    ] {
        assert!(!features.contains(&lacking), "{lacking} in {features:?}");
    }
}

#[test]
fn exec_on_apple_has_no_workdir_env_or_stdin_and_one_output_stream() {
    let env = apple_env();
    let apple = running(&env, "apple", "exec-apple");
    let docker = running(&env, "docker", "exec-docker");

    for (flags, what) in [
        (&["-w", "/tmp"][..], "-w"),
        (&["-e", "A=1"][..], "-e"),
        (&["-i"][..], "-i"),
    ] {
        let mut args = vec!["exec"];
        args.extend(flags);
        args.extend([apple.as_str(), "true"]);
        let refused = env.berth(&args);
        assert_eq!(refused.code, 76, "{refused:?}");
        assert!(
            refused.stderr.contains("\"apple\"")
                && refused.stderr.contains(what)
                && refused.stderr.contains("docker"),
            "the refusal names the backend, the flag and who can: {}",
            refused.stderr
        );
        // The daemon behind both would have done it.
        let mut args = vec!["exec"];
        args.extend(flags);
        args.extend([docker.as_str(), "true"]);
        env.berth(&args).ok();
    }

    // stdout and stderr arrive as one stream, on stdout.
    let both = ["sh", "-c", "echo out; echo err >&2"];
    let mut args = vec!["exec", apple.as_str()];
    args.extend(both);
    let combined = env.berth(&args).ok();
    // (dockerd reads the two pipes apart, so their order is not kept.)
    let mut lines: Vec<&str> = combined.stdout.lines().collect();
    lines.sort();
    assert_eq!(lines, ["err", "out"], "{combined:?}");
    assert!(!combined.stderr.contains("err"), "{combined:?}");
    let mut args = vec!["exec", docker.as_str()];
    args.extend(both);
    let separate = env.berth(&args).ok();
    assert_eq!(
        (separate.stdout.as_str(), separate.stderr.trim()),
        ("out\n", "err")
    );

    env.berth(&["rm", "-f", &apple, &docker]).ok();
}

#[test]
fn apple_refuses_snapshots_and_commit_before_asking_the_daemon() {
    let env = apple_env();
    let apple = running(&env, "apple", "commit-apple");
    for args in [
        vec!["commit", apple.as_str()],
        vec!["snapshot", "--backend", "apple", "ls"],
        vec!["rm", "-f", "--keep-snapshot", apple.as_str()],
    ] {
        let refused = env.berth(&args);
        assert_eq!(refused.code, 76, "{args:?}: {refused:?}");
    }
    // Refused before anything happened: the container is still there and running.
    assert_eq!(
        env.berth(&["inspect", &apple]).ok().json()[0]["state"],
        "running"
    );
    env.berth(&["rm", "-f", &apple]).ok();
}
