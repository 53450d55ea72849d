//! End-to-end: real plugins built from source deciding about real containers on the native
//! backend, driven through the `berth` binary.

use berth_tests::env::{BerthEnv, package_source};
use berth_tests::plugins::{
    COMPAT_0_2_GUARD, COMPAT_0_2_NAMING, COMPAT_0_2_SELECTOR, COMPAT_0_3_GUARD, COMPAT_0_3_NAMING,
    COMPAT_0_3_SELECTOR, COMPAT_GUARD, COMPAT_NAMING, COMPAT_SELECTOR, GUARD, LOOPER, NAMING,
    PROVISIONER, SELECTOR, TRAPPER,
};

const IMAGE: &str = "busybox:local";

fn naming(pattern: Option<&str>) -> String {
    let settings = pattern.map_or(String::new(), |p| {
        format!("settings = {{ pattern = '{p}' }}\n")
    });
    format!(
        "[[plugins]]\nname = \"naming\"\npath = \"{}\"\nworlds = [\"name-policy\"]\n{settings}\n",
        NAMING.path().display()
    )
}

fn selector() -> String {
    format!(
        "[[plugins]]\nname = \"selector\"\npath = \"{}\"\nworlds = [\"backend-policy\"]\ngrants = [\"containers\"]\n\n",
        SELECTOR.path().display()
    )
}

fn guard(mode: &str) -> String {
    format!(
        "[[plugins]]\nname = \"guard\"\npath = \"{}\"\nworlds = [\"lifecycle-hooks\"]\ngrants = [\"containers\"]\nmode = \"{mode}\"\n\
         settings = {{ require-memory-limit = true, allowed-mount-prefixes = \"/tmp,/srv\" }}\n\n",
        GUARD.path().display()
    )
}

fn all_three() -> BerthEnv {
    BerthEnv::new(&format!(
        "{}{}{}",
        naming(None),
        selector(),
        guard("enforce")
    ))
    .with_busybox()
}

#[test]
fn a_container_goes_through_all_three_plugins_and_sees_the_patch() {
    let env = all_three();
    let run = env
        .berth(&[
            "run",
            "--rm",
            "--name",
            "hello-berth",
            "--memory",
            "32m",
            IMAGE,
            "sh",
            "-c",
            "echo $BERTH_CONTAINER_NAME $BERTH_IMAGE",
        ])
        .ok();
    assert_eq!(run.stdout, "hello-berth busybox:local\n");

    // Every plugin's decision is in the log, in pipeline order.
    let events = env.berth(&["events", "--json"]).ok().stdout;
    let decisions: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let steps: Vec<(&str, &str)> = decisions
        .iter()
        .map(|d| {
            (
                d["plugin"].as_str().unwrap(),
                d["function"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        &steps[..4],
        &[
            ("naming", "validate-name"),
            ("selector", "select-backend"),
            ("guard", "pre-create"),
            ("guard", "post-create"),
        ]
    );
    assert_eq!(decisions[1]["verdict"], "select");
    assert_eq!(decisions[2]["verdict"], "patch");
    assert!(steps.contains(&("guard", "post-remove")), "{steps:?}");
}

/// The compatibility promise, end to end: the three plugins as they were built for each
/// earlier berth:plugin version decide about a real container on this berth.
#[test]
fn plugins_built_against_earlier_abis_still_run_a_container() {
    for (abi, frozen_plugins) in [
        ("0.1.0", [COMPAT_NAMING, COMPAT_SELECTOR, COMPAT_GUARD]),
        (
            "0.2.0",
            [COMPAT_0_2_NAMING, COMPAT_0_2_SELECTOR, COMPAT_0_2_GUARD],
        ),
        (
            "0.3.0",
            [COMPAT_0_3_NAMING, COMPAT_0_3_SELECTOR, COMPAT_0_3_GUARD],
        ),
    ] {
        let mut config = format!("{}{}{}", naming(None), selector(), guard("enforce"));
        for (current, frozen) in [NAMING, SELECTOR, GUARD].iter().zip(&frozen_plugins) {
            let (current, frozen) = (current.path(), frozen.path());
            config = config.replace(
                &current.display().to_string(),
                &frozen.display().to_string(),
            );
        }
        let frozen_guard = frozen_plugins[2].path().display().to_string();
        assert!(config.contains(&frozen_guard), "{config}");
        let env = BerthEnv::new(&config).with_busybox();

        let run = env
            .berth(&[
                "run",
                "--rm",
                "--name",
                "old-plugins",
                "--memory",
                "32m",
                IMAGE,
                "sh",
                "-c",
                "echo $BERTH_CONTAINER_NAME $BERTH_IMAGE",
            ])
            .ok();
        assert_eq!(run.stdout, "old-plugins busybox:local\n", "{abi}");
        let events = env.berth(&["events", "--json"]).ok().stdout;
        let steps: Vec<(String, String)> = events
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|d| (d["plugin"].to_string(), d["verdict"].to_string()))
            .take(3)
            .collect();
        assert_eq!(
            steps,
            [
                ("\"naming\"".to_string(), "\"allow\"".to_string()),
                ("\"selector\"".to_string(), "\"select\"".to_string()),
                ("\"guard\"".to_string(), "\"patch\"".to_string()),
            ],
            "{abi}"
        );

        let denied = env.berth(&["run", "--rm", "--name", "Not_A_Label", IMAGE, "true"]);
        assert_eq!(denied.code, 77, "{abi}: {denied:?}");

        let check = env.berth(&["plugin", "check", &frozen_guard]).ok();
        assert!(
            check
                .stdout
                .contains(&format!("abi        berth:plugin@{abi}\n")),
            "{}",
            check.stdout
        );
    }
}

/// 0.3.0's spec carries networking: the guard refuses a host port outside the site's range
/// before anything exists, and replaces the container's resolvers with the site's, keeping
/// its search domains, in the resolv.conf the container reads.
#[test]
fn a_hook_refuses_a_published_port_and_patches_the_resolvers() {
    let env = BerthEnv::new(&format!(
        "[[plugins]]\nname = \"guard\"\npath = \"{}\"\nworlds = [\"lifecycle-hooks\"]\n\
         settings = {{ allowed-host-ports = \"8000-8999\", dns-servers = \"10.9.0.53\" }}\n",
        GUARD.path().display()
    ))
    .with_busybox();
    let refused = env.berth(&["run", "--rm", "-p", "127.0.0.1:9000:80", IMAGE, "true"]);
    assert_eq!(refused.code, 77, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("host port 9000 is outside the allowed host ports 8000-8999"),
        "{refused:?}"
    );
    assert_eq!(env.berth(&["ps", "-a", "-q"]).ok().stdout, "");

    let port = (8000 + u16::from(env.network.index)).to_string();
    let ran = env
        .berth(&[
            "run",
            "--rm",
            "-p",
            &format!("127.0.0.1:{port}:80"),
            "--dns",
            "10.0.0.2",
            "--dns-search",
            "corp.example",
            IMAGE,
            "cat",
            "/etc/resolv.conf",
        ])
        .ok();
    assert_eq!(
        ran.stdout, "# Generated by berth\n\nsearch corp.example\nnameserver 10.9.0.53\n\n",
        "{ran:?}"
    );
    let events = env.berth(&["events", "--json"]).ok().stdout;
    assert!(
        events.contains("\"dns\":{\"servers\":[\"10.9.0.53\"],\"search\":[\"corp.example\"]"),
        "the patch is in the decision log: {events}"
    );
}

#[test]
fn start_stop_and_rm_load_only_the_hook_plugins() {
    let env = all_three();
    env.berth(&["create", "--name", "kept", "--memory", "32m", IMAGE, "true"])
        .ok();

    // The name policy's file goes missing: creating fails on it, but removing, which
    // consults only lifecycle hooks, neither loads nor needs it.
    let config = std::fs::read_to_string(&env.config).unwrap();
    let broken = config.replace(
        &NAMING.path().display().to_string(),
        "/nonexistent/naming.wasm",
    );
    assert_ne!(broken, config);
    std::fs::write(&env.config, broken).unwrap();

    let create = env.berth(&[
        "create", "--name", "other", "--memory", "32m", IMAGE, "true",
    ]);
    assert_eq!(create.code, 70, "{create:?}");
    assert!(create.stderr.contains("naming"), "{}", create.stderr);

    env.berth(&["rm", "kept"]).ok();
    let events = env.berth(&["events", "--json"]).ok().stdout;
    assert!(
        events
            .lines()
            .any(|l| l.contains("\"pre-remove\"") && l.contains("\"guard\"")),
        "{events}"
    );
}

#[test]
fn the_patched_spec_is_what_berth_records() {
    let env = all_three();
    env.berth(&[
        "create", "--name", "recorded", "--memory", "32m", IMAGE, "true",
    ])
    .ok();
    let inspect = env.berth(&["inspect", "recorded"]).ok().json();
    assert_eq!(
        inspect[0]["spec"]["env"]["BERTH_CONTAINER_NAME"],
        "recorded"
    );
    assert_eq!(inspect[0]["labels"]["berth.guard"], "checked");
    assert_eq!(inspect[0]["backend"], "native");
}

#[test]
fn each_plugin_denies_with_its_reason_and_exit_77() {
    let env = all_three();
    let cases: &[(&[&str], &str)] = &[
        (&["--name", "Bad_Name", "--memory", "32m"], "naming"),
        (&["--name", "no-limit"], "guard"),
        (
            &[
                "--name",
                "bad-mount",
                "--memory",
                "32m",
                "-v",
                "/etc:/host-etc",
            ],
            "guard",
        ),
        (
            &[
                "--name",
                "elsewhere",
                "--memory",
                "32m",
                "-l",
                "berth.backend=docker",
            ],
            "selector",
        ),
    ];
    for (flags, plugin) in cases {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[IMAGE, "true"]);
        let run = env.berth(&args);
        assert_eq!(run.code, 77, "{flags:?}: {run:?}");
        assert!(
            run.stderr
                .contains(&format!("denied by plugin \"{plugin}\"")),
            "{flags:?}: {run:?}"
        );
    }
    // Nothing was created by any of them.
    assert_eq!(
        env.berth(&["ps", "-a", "--json"]).ok().json(),
        serde_json::json!([])
    );
}

#[test]
fn monitor_mode_records_denies_and_patches_without_applying_them() {
    let env = BerthEnv::new(&guard("monitor")).with_busybox();
    let pre_create_verdicts = |env: &BerthEnv| -> Vec<(String, String)> {
        env.berth(&["events", "--json"])
            .ok()
            .stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|d| d["function"] == "pre-create")
            .map(|d| {
                (
                    d["verdict"].as_str().unwrap().into(),
                    d["mode"].as_str().unwrap().into(),
                )
            })
            .collect()
    };

    // With a memory limit the guard patches, but in monitor mode the patch is not applied.
    let run = env
        .berth(&[
            "run",
            "--rm",
            "--memory",
            "32m",
            IMAGE,
            "sh",
            "-c",
            "echo [$BERTH_CONTAINER_NAME]",
        ])
        .ok();
    assert_eq!(run.stdout, "[]\n");
    // Without one the guard denies, and in monitor mode the container runs anyway.
    env.berth(&["run", "--rm", IMAGE, "true"]).ok();
    assert_eq!(
        pre_create_verdicts(&env),
        [
            ("patch".into(), "monitor".into()),
            ("deny".into(), "monitor".into())
        ]
    );
}

#[test]
fn sysinner_names_are_generated_and_an_overflowing_replica_is_refused() {
    let env = BerthEnv::new(&naming(Some("^app-[a-f0-9]{8,16}-[0-9a-f]{4}$"))).with_busybox();
    let id = env
        .berth(&[
            "create",
            "-l",
            "berth.app-id=0123abcd",
            "-l",
            "berth.replica-id=26",
            IMAGE,
            "true",
        ])
        .ok()
        .stdout;
    let inspect = env.berth(&["inspect", id.trim()]).ok().json();
    assert_eq!(inspect[0]["name"], "app-0123abcd-001a");

    let overflow = env.berth(&[
        "create",
        "-l",
        "berth.app-id=0123abcd",
        "-l",
        "berth.replica-id=65536",
        IMAGE,
        "true",
    ]);
    assert_eq!(overflow.code, 77, "{overflow:?}");
    assert!(overflow.stderr.contains("naming"), "{overflow:?}");

    let manual = env.berth(&["create", "--name", "web", IMAGE, "true"]);
    assert_eq!(manual.code, 77, "{manual:?}");
}

#[test]
fn a_failing_plugin_fails_closed_or_open_as_configured() {
    let trapper = |on_error: &str| {
        format!(
            "[[plugins]]\nname = \"trapper\"\npath = \"{}\"\nworlds = [\"name-policy\"]\non-error = \"{on_error}\"\n",
            TRAPPER.path().display()
        )
    };
    let closed = BerthEnv::new(&trapper("deny")).with_busybox();
    let run = closed.berth(&["run", "--rm", "--name", "web", IMAGE, "true"]);
    assert_eq!(run.code, 70, "{run:?}");
    assert!(
        run.stderr
            .contains("plugin \"trapper\" failed at validate-name (trap)"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("trapper always panics"),
        "the guest's panic message is shown: {run:?}"
    );

    let open = BerthEnv::new(&trapper("allow")).with_busybox();
    open.berth(&["run", "--rm", "--name", "web", IMAGE, "true"])
        .ok();
}

#[test]
fn a_plugin_that_loops_forever_is_stopped_at_its_deadline() {
    let env = BerthEnv::new(&format!(
        "[[plugins]]\nname = \"looper\"\npath = \"{}\"\nworlds = [\"lifecycle-hooks\"]\ntimeout-ms = 50\n",
        LOOPER.path().display()
    ))
    .with_busybox();
    let run = env.berth(&["run", "--rm", IMAGE, "true"]);
    assert_eq!(run.code, 70, "{run:?}");
    assert!(run.stderr.contains("(timeout)"), "{run:?}");
}

#[test]
fn plugin_tools_show_check_and_call() {
    let env = all_three();
    let ls = env.berth(&["plugin", "ls", "--json"]).ok().json();
    assert_eq!(ls.as_array().unwrap().len(), 3);
    // The first load compiled and cached; this second process reuses the cache.
    let again = env.berth(&["plugin", "ls", "--json"]).ok().json();
    assert!(
        again
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["cache"] == "hit"),
        "{again}"
    );

    let check = env
        .berth(&[
            "plugin",
            "check",
            &GUARD.path().display().to_string(),
            "--json",
        ])
        .ok()
        .json();
    // The guard plays both hook worlds; this config has it as a container hook only.
    assert_eq!(
        check["worlds"],
        serde_json::json!(["lifecycle-hooks", "pod-lifecycle-hooks"])
    );
    assert_eq!(check["configured-as"], "guard");

    let spec = env.dir.path().join("spec.toml");
    std::fs::write(&spec, "name = \"Not_A_Label\"\nimage = \"busybox:local\"\n").unwrap();
    let call = env
        .berth(&[
            "plugin",
            "call",
            "naming",
            "validate-name",
            "--spec",
            &spec.display().to_string(),
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(call["verdict"], "deny");
}

fn provisioner(grants: &str, packages: &str, repository: &std::path::Path) -> String {
    format!(
        "[[plugins]]\nname = \"provisioner\"\npath = \"{}\"\nworlds = [\"lifecycle-hooks\"]\n\
         grants = [{grants}]\nsettings = {{ packages = \"{packages}\" }}\n\n\
         [packages]\nrepository = \"{}\"\n",
        PROVISIONER.path().display(),
        repository.display()
    )
}

#[test]
fn a_granted_hook_gives_containers_volumes_and_packages() {
    let repo = tempfile::tempdir().unwrap();
    let env = BerthEnv::new(&provisioner(
        "\"quotas\", \"packages\"",
        "hello@1.0.0",
        repo.path(),
    ))
    .with_busybox();
    let src = package_source(env.dir.path());
    let built = env
        .command(&[
            "pkg",
            "build",
            &src,
            "--name",
            "hello",
            "--version",
            "1.0.0",
        ])
        .current_dir(repo.path())
        .output()
        .unwrap();
    assert!(built.status.success(), "{built:?}");

    let run = env.berth(&[
        "run",
        "--name",
        "web",
        IMAGE,
        "sh",
        "-c",
        "echo kept > /data/file && /usr/berth/hello/bin/hello && \
         (touch /usr/berth/hello/x 2>/dev/null || echo read-only)",
    ]);
    assert_eq!(run.ok().stdout, "hello from a package\nread-only\n");
    // The volume the hook asked for holds what the container wrote, and cannot go while used.
    let volume = env.berth(&["volume", "ls", "--json"]).ok().json();
    assert_eq!(volume[0]["name"], "web-data", "{volume}");
    let path = std::path::Path::new(volume[0]["path"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(path.join("file")).unwrap(),
        "kept\n"
    );
    assert_eq!(env.berth(&["volume", "rm", "web-data"]).code, 73);
    assert_eq!(
        env.berth(&["pkg", "ls", "--json"]).ok().json()[0]["name"],
        "hello"
    );

    // The post-remove hook removes the volume once the container is gone.
    env.berth(&["rm", "web"]).ok();
    assert_eq!(
        env.berth(&["volume", "ls", "--json"]).ok().json(),
        serde_json::json!([])
    );
    assert!(!path.exists());

    // What the host cannot provide denies the create with the host's reason.
    let env = BerthEnv::new(&provisioner(
        "\"quotas\", \"packages\"",
        "absent@1.0.0",
        repo.path(),
    ))
    .with_busybox();
    let denied = env.berth(&["run", "--rm", "--name", "web", IMAGE, "true"]);
    assert_eq!(denied.code, 77, "{denied:?}");
    assert!(
        denied.stderr.contains("provisioner") && denied.stderr.contains("absent@1.0.0"),
        "{denied:?}"
    );
    assert_eq!(env.berth(&["ps", "-a", "-q"]).ok().stdout, "");
}

#[test]
fn quotas_and_packages_are_refused_without_their_grants() {
    let repo = tempfile::tempdir().unwrap();
    let env = BerthEnv::new(&provisioner("\"quotas\"", "", repo.path())).with_busybox();
    let refused = env.berth(&["run", "--rm", IMAGE, "true"]);
    assert_eq!(refused.code, 70, "{refused:?}");
    assert!(
        refused.stderr.contains(
            "imports berth:plugin/packages@0.4.0 but is not granted it: add \"packages\" to \
             grants of [[plugins]] name = \"provisioner\""
        ),
        "{refused:?}"
    );
    assert_eq!(env.berth(&["ps", "-a", "-q"]).ok().stdout, "");
    assert_eq!(
        env.berth(&["volume", "ls", "--json"]).ok().json(),
        serde_json::json!([])
    );
}

/// Compensation: the provisioner ensures a volume at pre-create, then the backend cannot
/// create the container (its image is missing). berth removes its own claim and tells the
/// hook `create-failed`, and the hook removes the volume: nothing is left, the name is free.
#[test]
fn a_create_that_fails_after_pre_create_is_undone_and_the_hook_releases_its_volume() {
    let repo = tempfile::tempdir().unwrap();
    let env =
        BerthEnv::new(&provisioner("\"quotas\", \"packages\"", "", repo.path())).with_busybox();
    let failed = env.berth(&["run", "--rm", "--name", "web", "busybox:absent", "true"]);
    assert_eq!(failed.code, 66, "the image is missing: {failed:?}");
    let volumes = env.berth(&["volume", "ls", "--json"]).ok().json();
    assert_eq!(
        volumes,
        serde_json::json!([]),
        "the provisioned volume was released"
    );
    assert_eq!(
        env.berth(&["ps", "-a", "--json"]).ok().json(),
        serde_json::json!([])
    );
    let events = env.berth(&["events", "--json"]).ok().stdout;
    assert!(
        events.contains("create-failed"),
        "the hook was told: {events}"
    );

    // The name is free, and a create that works keeps its volume (until post-remove).
    env.berth(&["create", "--name", "web", IMAGE, "true"]).ok();
    let volumes = env.berth(&["volume", "ls", "--json"]).ok().json();
    assert_eq!(volumes[0]["name"], "web-data", "{volumes}");
}

/// Pods go through the same policies: name policies name and validate them (kind `pod`), and
/// the backend policy places them among the backends that run pods.
#[test]
fn name_and_backend_policies_decide_about_pods_too() {
    let env = BerthEnv::new(&format!(
        "{}{}",
        naming(Some("^(app-[a-f0-9]{8,16}-[0-9a-f]{4}|[a-z]{3,12})$")),
        selector()
    ))
    .with_busybox();
    let refused = env.berth(&["pod", "create", "--name", "Not-Valid"]);
    assert_eq!(refused.code, 77, "{refused:?}");
    assert!(refused.stderr.contains("naming"), "{refused:?}");
    assert_eq!(
        env.berth(&["pod", "ls", "--json"]).ok().json(),
        serde_json::json!([])
    );
    let id = env
        .berth(&[
            "pod",
            "create",
            "-l",
            "berth.app-id=0123abcd",
            "-l",
            "berth.replica-id=26",
        ])
        .ok()
        .stdout;
    let pod = env.berth(&["pod", "inspect", id.trim()]).ok().json()[0].clone();
    assert_eq!(pod["name"], "app-0123abcd-001a", "{pod}");
    assert_eq!(pod["backend"], "native", "{pod}");
    let events = env.berth(&["events", "--json"]).ok().stdout;
    let pod_decisions: Vec<&str> = events
        .lines()
        .filter(|l| l.contains("\"pod\"") || l.contains("app-0123abcd-001a"))
        .collect();
    assert!(
        pod_decisions.iter().any(|l| l.contains("generate-name")),
        "{events}"
    );
    assert!(
        pod_decisions.iter().any(|l| l.contains("select-backend")),
        "{events}"
    );
    env.berth(&["pod", "rm", "-f", id.trim()]).ok();
}

/// `[pipeline] budget-ms` is shared by every plugin call of one command: a slow first plugin
/// leaves the second a short deadline, and once it is spent the rest are not asked (each
/// plugin's `on-error` then decides; here: allow, so the container is still created).
#[test]
fn one_budget_is_shared_by_every_plugin_call_of_an_operation() {
    let looper = |name: &str, timeout: u64| {
        format!(
            "[[plugins]]\nname = \"{name}\"\npath = \"{}\"\nworlds = [\"lifecycle-hooks\"]\n\
             timeout-ms = {timeout}\non-error = \"allow\"\n\n",
            LOOPER.path().display()
        )
    };
    let env = BerthEnv::new(&format!(
        "[pipeline]\nbudget-ms = 1000\n\n{}{}",
        looper("slow", 600),
        looper("second", 5000)
    ))
    .with_busybox();
    env.berth(&["create", "--name", "budgeted", IMAGE, "true"])
        .ok();
    let events = env.berth(&["events", "--json"]).ok().stdout;
    let decisions: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |plugin: &str, function: &str| {
        decisions
            .iter()
            .find(|d| d["plugin"] == plugin && d["function"] == function)
            .unwrap_or_else(|| panic!("no {plugin} {function}: {events}"))
            .clone()
    };
    let slow = find("slow", "pre-create");
    assert_eq!(
        slow["budget-us"], 600_000,
        "its own timeout is the smaller: {slow}"
    );
    // What the slow one left (at most 400 ms, none if a loaded machine let it overrun), not
    // its own 5 s.
    let second = find("second", "pre-create");
    let had = second["budget-us"].as_u64().unwrap();
    assert!(had <= 400_000, "{second}");
    let reason = second["reason"].as_str().unwrap();
    assert!(
        reason.contains("budget had left ([pipeline] budget-ms = 1000)")
            || reason.contains("not asked"),
        "{second}"
    );
    for plugin in ["slow", "second"] {
        let post = find(plugin, "post-create");
        assert_eq!(post["budget-us"], 0, "{post}");
        assert!(
            post["reason"].as_str().unwrap().contains("not asked"),
            "{post}"
        );
    }
    // The next command has a budget of its own.
    env.berth(&["start", "budgeted"]).ok();
    let events = env.berth(&["events", "--json"]).ok().stdout;
    let start = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|d| d["plugin"] == "slow" && d["function"] == "pre-start")
        .unwrap();
    assert_eq!(start["budget-us"], 600_000, "{start}");
}

/// Pod hooks (ABI 0.4.0): the guard refuses a pod publishing a host port outside the site's
/// range before anything of it exists; an accepted pod's every step is told as `pod-<hook>`,
/// with its apps, and its app's container is told its own steps. `plugin call` makes one pod
/// decision, and a 0.3.0 component cannot be configured as a pod hook.
#[test]
fn pod_hooks_are_told_every_step_and_a_refused_pod_leaves_nothing() {
    let guard = GUARD.path().display().to_string();
    let env = BerthEnv::new(&format!(
        "[[plugins]]\nname = \"guard\"\npath = \"{guard}\"\n\
         worlds = [\"lifecycle-hooks\", \"pod-lifecycle-hooks\"]\n\
         settings = {{ allowed-host-ports = \"8000-8999\" }}\n\n",
    ))
    .with_busybox();
    let refused = env.berth(&["pod", "create", "--name", "web", "-p", "127.0.0.1:9999:80"]);
    assert_eq!(refused.code, 77, "{refused:?}");
    assert!(
        refused.stderr.contains("guard") && refused.stderr.contains("host port 9999"),
        "{refused:?}"
    );
    assert_eq!(
        env.berth(&["pod", "ls", "--json"]).ok().json(),
        serde_json::json!([])
    );

    let manifest = env.run_dir().with_file_name("pod.toml");
    std::fs::write(
        &manifest,
        "name = \"web\"\n\n[[app]]\nimage = \"busybox:local\"\ncommand = [\"sleep\", \"600\"]\n",
    )
    .unwrap();
    env.berth(&["pod", "run", "--manifest", manifest.to_str().unwrap()])
        .ok();
    env.berth(&["pod", "stop", "-t", "0", "web"]).ok();
    env.berth(&["pod", "rm", "web"]).ok();

    let events = env.berth(&["events", "--json"]).ok().stdout;
    let decisions: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let pod_steps: Vec<(&str, &str)> = decisions
        .iter()
        .filter(|d| d["function"].as_str().unwrap().starts_with("pod-"))
        .map(|d| {
            (
                d["function"].as_str().unwrap(),
                d["verdict"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        pod_steps,
        [
            ("pod-pre-create", "deny"),
            ("pod-pre-create", "allow"),
            ("pod-post-create", "allow"),
            ("pod-pre-start", "allow"),
            ("pod-post-start", "allow"),
            ("pod-pre-stop", "allow"),
            ("pod-post-stop", "allow"),
            ("pod-pre-remove", "allow"),
            ("pod-post-remove", "allow"),
        ],
        "{events}"
    );
    let app_steps: Vec<&str> = decisions
        .iter()
        .filter(|d| d["container"] == "web-busybox")
        .map(|d| d["function"].as_str().unwrap())
        .collect();
    for step in ["pre-create", "post-start", "post-stop", "post-remove"] {
        assert!(app_steps.contains(&step), "{step}: {app_steps:?}");
    }

    // One decision on demand, from a pod spec file.
    let spec = env.run_dir().with_file_name("pod-spec.toml");
    std::fs::write(
        &spec,
        "name = \"api\"\nports = [{ container-port = 80, host-port = 9443 }]\n",
    )
    .unwrap();
    let call = env
        .berth(&[
            "plugin",
            "call",
            "guard",
            "pod-pre-create",
            "--spec",
            spec.to_str().unwrap(),
        ])
        .ok();
    assert!(
        call.stdout.contains("deny") && call.stdout.contains("host port 9443"),
        "{}",
        call.stdout
    );

    // A component built against 0.3.0 has no pod hooks: configured as one, it is refused.
    let frozen = COMPAT_0_3_GUARD.path().display().to_string();
    let old = BerthEnv::new(&format!(
        "[[plugins]]\nname = \"old\"\npath = \"{frozen}\"\nworlds = [\"pod-lifecycle-hooks\"]\n\n"
    ));
    let load = old.berth(&["pod", "create", "--name", "web"]);
    assert_ne!(load.code, 0, "{load:?}");
    assert!(
        load.stderr
            .contains("does not export berth:plugin/pod-hooks@0.4.0"),
        "{load:?}"
    );
}
