//! The snapshot and version flows every backend with snapshots must pass, run by each
//! backend's suite against its own store.

use crate::env::BerthEnv;

/// `berth commit` twice and `berth rollback` to each version on a running container of
/// `backend`: the file it wrote is back as it was, lineage runs to the image, versions outlive
/// the container.
pub fn versions_restore_a_containers_files(env: &BerthEnv, backend: &str, image: &str) {
    let mut args = vec![
        "run",
        "--backend",
        backend,
        "-d",
        "--name",
        "versioned",
        image,
    ];
    // Stops promptly (sh as PID 1 ends on SIGTERM only through a trap).
    args.extend([
        "sh",
        "-c",
        "trap 'exit 0' TERM; while :; do sleep 1 & wait; done",
    ]);
    env.berth(&args).ok();
    let exec = |script: &str| {
        env.berth(&["exec", "versioned", "sh", "-c", script])
            .ok()
            .stdout
    };

    exec("echo one > /state");
    let first = env
        .berth(&["commit", "versioned"])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(first.contains("-v"), "{first}");
    // Still running, on a new active snapshot with the committed content.
    assert_eq!(exec("cat /state"), "one\n");
    exec("echo two > /state");
    env.berth(&["commit", "versioned", "versioned-two"]).ok();
    exec("echo three > /state");

    env.berth(&["rollback", "versioned", &first]).ok();
    assert_eq!(exec("cat /state"), "one\n");
    env.berth(&["rollback", "versioned", "versioned-two"]).ok();
    assert_eq!(exec("cat /state"), "two\n");
    assert_eq!(
        env.berth(&["inspect", "versioned", "--json"]).ok().json()[0]["state"],
        "running"
    );
    let lineage = env
        .berth(&[
            "snapshot",
            "--backend",
            backend,
            "lineage",
            "versioned-two",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(lineage[0], "versioned-two");
    assert_eq!(lineage[1], first.as_str());
    assert!(
        lineage[2].as_str().unwrap().starts_with("sha256:"),
        "{lineage}"
    );

    let missing = env.berth(&["rollback", "versioned", "no-such-version"]);
    assert_eq!(missing.code, 66, "{missing:?}");

    // Versions outlive the container, like images outlive docker's; they are removed by name.
    env.berth(&["rm", "-f", "versioned"]).ok();
    let snapshot = |args: &[&str]| {
        let mut all = vec!["snapshot", "--backend", backend];
        all.extend(args);
        env.berth(&all)
    };
    let parent = snapshot(&["rm", &first]);
    assert_eq!(parent.code, 73, "{parent:?}");
    snapshot(&["rm", "versioned-two", &first]).ok();
}

/// On `backend`'s snapshots: a chain of four from the image's layer, each mounted and written,
/// traced back to the base; what is committed shows in a view of the top; removal refuses a
/// parent and a missing key.
pub fn a_chain_of_snapshots_is_mounted_and_traced(env: &BerthEnv, backend: &str) {
    let snapshot = |args: &[&str]| {
        let mut all = vec!["snapshot", "--backend", backend];
        all.extend(args);
        env.berth(&all)
    };
    let base = snapshot(&["ls", "--json"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "committed" && s["parent"].is_null())
        .map(|s| s["name"].as_str().unwrap().to_string())
        .expect("the busybox layer is unpacked");

    // A chain of four: base <- c1 <- c2 <- c3, each with one file more.
    let mut parent = base.clone();
    for n in 1..=3 {
        let work = format!("chain-work-{n}");
        let mounts = snapshot(&["prepare", &work, &parent, "--json"]).ok().json();
        assert_eq!(mounts[0]["type"], "overlay", "{mounts}");
        let dir = snapshot(&["mount", &work]).ok().stdout.trim().to_string();
        std::fs::write(std::path::Path::new(&dir).join(format!("file{n}")), "x").unwrap();
        assert!(std::path::Path::new(&dir).join("bin/busybox").exists());
        snapshot(&["unmount", &dir]).ok();
        assert!(!std::path::Path::new(&dir).exists());
        let name = format!("chain-{n}");
        snapshot(&["commit", &name, &work]).ok();
        parent = name;
    }
    let lineage = snapshot(&["lineage", "chain-3"]).ok().stdout;
    assert_eq!(lineage, format!("chain-3\nchain-2\nchain-1\n{base}\n"));

    // What was committed is there in a view of the top.
    snapshot(&["prepare", "chain-check", "chain-3"]).ok();
    let dir = snapshot(&["mount", "chain-check"])
        .ok()
        .stdout
        .trim()
        .to_string();
    for n in 1..=3 {
        assert!(std::path::Path::new(&dir).join(format!("file{n}")).exists());
    }
    snapshot(&["unmount", &dir]).ok();

    assert_eq!(snapshot(&["lineage", "chain-none"]).code, 66);
    assert_eq!(snapshot(&["rm", "chain-none"]).code, 66);
    let outside = snapshot(&["unmount", "/tmp"]);
    assert_eq!(outside.code, 64, "{outside:?}");
    let busy = snapshot(&["rm", "chain-1"]);
    assert_eq!(busy.code, 73, "{busy:?}");
    snapshot(&["rm", "chain-check", "chain-3", "chain-2", "chain-1"]).ok();
    assert!(!snapshot(&["ls"]).ok().stdout.contains("chain-"));
}
