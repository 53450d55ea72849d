//! The Docker backend against the real dockerd, observed through `docker inspect`: the rules of
//! sysinner's driver, images from the loopback registry, stats, a dead daemon, and the plugin
//! pipeline sending a labelled container to Docker.

use std::os::unix::fs::MetadataExt;

use berth_tests::bin::berth_exe;
use berth_tests::docker::{DroppingDocker, busybox_image, docker, docker_env, docker_inspect};
use berth_tests::env::BerthEnv;
use berth_tests::plugins::SELECTOR;
use berth_tests::registry;

/// `berth run -d --backend docker --name NAME FLAGS... IMAGE COMMAND...`, which must succeed.
fn run_detached(env: &BerthEnv, name: &str, flags: &[&str], command: &[&str]) {
    let mut args = vec!["run", "-d", "--backend", "docker", "--name", name];
    args.extend(flags);
    args.push(busybox_image());
    args.extend(command);
    env.berth(&args).ok();
}

/// A Docker container name unique to this test process.
fn unique(name: &str) -> String {
    format!("bt{}-{name}", std::process::id())
}

#[test]
fn create_maps_limits_ports_restart_dns_and_hostname_as_the_driver_does() {
    let env = docker_env("");
    let name = unique("limits");
    env.berth(&[
        "create",
        "--backend",
        "docker",
        "--name",
        &name,
        "--memory",
        "64m",
        "--cpus",
        "1.5",
        "-p",
        "127.0.0.1:18081:80",
        "-p",
        "5353:53/udp",
        "--restart",
        "on-failure",
        "--dns",
        "10.0.0.2",
        "--hostname",
        "box",
        busybox_image(),
        "sleep",
        "60",
    ])
    .ok();
    let facts = docker_inspect(
        &name,
        "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} \
         {{.HostConfig.ShmSize}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}} \
         {{.HostConfig.Dns}} {{.Config.Hostname}}",
    );
    assert_eq!(
        facts,
        "1500000000 67108864 67108864 33554432 100 on-failure [10.0.0.2] box"
    );
    assert_eq!(
        docker_inspect(
            &name,
            "{{range .HostConfig.Ulimits}}{{.Name}}={{.Soft}}/{{.Hard}}{{end}}"
        ),
        "nofile=10000/10000"
    );
    assert_eq!(
        docker_inspect(&name, "{{json .HostConfig.PortBindings}}"),
        r#"{"53/udp":[{"HostIp":"","HostPort":"5353"}],"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"18081"}]}"#
    );
    assert_eq!(
        docker_inspect(&name, "{{json .Config.ExposedPorts}}"),
        r#"{"53/udp":{},"80/tcp":{}}"#
    );
    // The berth id rides along as a label; inspect maps the limits back.
    let info = env.berth(&["inspect", &name]).ok().json();
    assert_eq!(
        docker_inspect(&name, "{{index .Config.Labels \"berth.id\"}}"),
        info[0]["id"].as_str().unwrap()
    );
    assert_eq!(info[0]["limits"]["cpu-millis"], 1500);
    assert_eq!(info[0]["limits"]["memory-bytes"], 64 << 20);
    assert_eq!(
        info[0]["state"], "starting",
        "docker's created maps to starting"
    );

    // An explicit pids limit wins over the default of 100; no hostname stays docker's default.
    let other = unique("pids");
    env.berth(&[
        "create",
        "--backend",
        "docker",
        "--name",
        &other,
        "--pids-limit",
        "42",
        busybox_image(),
        "true",
    ])
    .ok();
    assert_eq!(docker_inspect(&other, "{{.HostConfig.PidsLimit}}"), "42");
    assert_eq!(docker_inspect(&other, "{{.HostConfig.Memory}}"), "0");
    assert_ne!(docker_inspect(&other, "{{.Config.Hostname}}"), "box");
}

#[test]
fn a_static_address_joins_the_vpc_network_which_follows_the_subnet() {
    let env = docker_env("");
    let first = unique("vpc1");
    run_detached(
        &env,
        &first,
        &["--ip", "10.77.0.5", "--subnet", "10.77.0.0"],
        &["sleep", "60"],
    );
    assert_eq!(
        docker_inspect("invpc2_docker", "{{range .IPAM.Config}}{{.Subnet}}{{end}}"),
        "10.77.0.0/24",
        "a bare address means /24"
    );
    assert_eq!(
        docker_inspect(
            &first,
            "{{.NetworkSettings.Networks.invpc2_docker.IPAddress}}"
        ),
        "10.77.0.5"
    );
    let info = env.berth(&["inspect", &first]).ok().json();
    assert_eq!(info[0]["ip_address"], "10.77.0.5");
    // The address is real: the container sees it on its interface.
    let ifconfig = env.berth(&["exec", &first, "ip", "addr"]).ok().stdout;
    assert!(ifconfig.contains("10.77.0.5/24"), "{ifconfig}");
    env.berth(&["rm", "-f", &first]).ok();

    // Another subnet: the network is recreated with it.
    let second = unique("vpc2");
    run_detached(
        &env,
        &second,
        &["--ip", "10.78.1.9", "--subnet", "10.78.0.0/16"],
        &["sleep", "60"],
    );
    assert_eq!(
        docker_inspect("invpc2_docker", "{{range .IPAM.Config}}{{.Subnet}}{{end}}"),
        "10.78.0.0/16"
    );
    assert_eq!(
        docker_inspect(
            &second,
            "{{.NetworkSettings.Networks.invpc2_docker.IPAddress}}"
        ),
        "10.78.1.9"
    );

    let bad = env.berth(&[
        "create",
        "--backend",
        "docker",
        "--ip",
        "10.0.0.1",
        "--subnet",
        "10.0.0.0/40",
        busybox_image(),
    ]);
    assert_eq!(bad.code, 64, "{bad:?}");
    assert!(bad.stderr.contains("prefix length"), "{bad:?}");
}

#[test]
fn run_streams_output_and_returns_the_exit_code_and_rm_leaves_nothing() {
    let env = docker_env("");
    let name = unique("run");
    let run = env.berth(&[
        "run",
        "--rm",
        "--backend",
        "docker",
        "--name",
        &name,
        "-e",
        "GREETING=hello",
        busybox_image(),
        "sh",
        "-c",
        "echo $GREETING; echo oops >&2; exit 3",
    ]);
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(run.stdout, "hello\n");
    assert!(run.stderr.contains("oops"), "{run:?}");
    assert_eq!(
        docker(&["ps", "-a", "-q", "--filter", &format!("name=^{name}$")]),
        ""
    );
    assert_eq!(env.berth(&["ps", "-a", "-q"]).ok().stdout, "");

    let missing = env.berth(&[
        "run",
        "--rm",
        "--backend",
        "docker",
        busybox_image(),
        "nosuch",
    ]);
    assert_eq!(missing.code, 127, "as docker run: {missing:?}");
    assert!(missing.stderr.contains("\"nosuch\""), "{missing:?}");
    assert_eq!(env.berth(&["ps", "-a", "-q"]).ok().stdout, "");
}

#[test]
fn stop_wait_logs_exec_and_a_container_removed_behind_berths_back() {
    let env = docker_env("");
    let name = unique("life");
    run_detached(
        &env,
        &name,
        &[],
        &[
            "sh",
            "-c",
            "echo first; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done",
        ],
    );
    let exec = env.berth(&["exec", &name, "sh", "-c", "echo inside; exit 7"]);
    assert_eq!(
        (exec.code, exec.stdout.as_str()),
        (7, "inside\n"),
        "{exec:?}"
    );
    let info = env.berth(&["inspect", &name]).ok().json();
    assert_eq!(info[0]["state"], "running");
    assert!(info[0]["pid"].as_u64().unwrap() > 0);

    env.berth(&["stop", &name]).ok();
    let info = env.berth(&["inspect", &name]).ok().json();
    assert_eq!(info[0]["state"], "stopped");
    assert_eq!(info[0]["exit_code"], 0);
    assert_eq!(env.berth(&["logs", &name]).ok().stdout, "first\nbye\n");
    // Stopping a stopped container is success.
    env.berth(&["stop", &name]).ok();

    // Gone from Docker but not from berth: stop and rm still succeed.
    docker(&["rm", "-f", &name]);
    env.berth(&["stop", &name]).ok();
    env.berth(&["rm", &name]).ok();
    assert_eq!(env.berth(&["ps", "-a", "-q"]).ok().stdout, "");
}

#[test]
fn a_running_container_is_removed_only_with_force() {
    let env = docker_env("");
    let name = unique("force");
    run_detached(&env, &name, &[], &["sleep", "60"]);
    let refused = env.berth(&["rm", &name]);
    assert_eq!(refused.code, 73, "{refused:?}");
    assert!(refused.stderr.contains("--force"), "{refused:?}");
    assert_eq!(docker_inspect(&name, "{{.State.Running}}"), "true");
    env.berth(&["rm", "-f", &name]).ok();
    assert_eq!(
        docker(&["ps", "-a", "-q", "--filter", &format!("name=^{name}$")]),
        ""
    );
}

#[test]
fn bind_mounts_get_their_owner_before_start() {
    let env = docker_env("");
    let name = unique("owner");
    let data = env.dir.path().join("owned");
    let spec = env.dir.path().join("spec.toml");
    std::fs::write(
        &spec,
        format!(
            "image = \"{}\"\ncommand = [\"sh\", \"-c\", \"touch /data/made && stat -c %u:%g /data\"]\n\
             [[mounts]]\nsource = \"{}\"\ntarget = \"/data\"\nowner = {{ uid = 4321, gid = 4322 }}\n\
             [[mounts]]\nsource = \"/etc\"\ntarget = \"/hostetc\"\nreadonly = true\n",
            busybox_image(),
            data.display()
        ),
    )
    .unwrap();
    let run = env.berth(&[
        "run",
        "--rm",
        "--backend",
        "docker",
        "--name",
        &name,
        "--spec",
        &spec.display().to_string(),
    ]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "4321:4322\n"),
        "{run:?}"
    );
    let meta = std::fs::metadata(&data).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (4321, 4322));
    assert!(data.join("made").exists());

    let ro = env.berth(&[
        "run",
        "--rm",
        "--backend",
        "docker",
        "-v",
        "/etc:/hostetc:ro",
        busybox_image(),
        "touch",
        "/hostetc/nope",
    ]);
    assert_ne!(ro.code, 0, "{ro:?}");
    assert!(ro.stderr.contains("Read-only"), "{ro:?}");
}

#[test]
fn an_existing_container_with_the_same_name_is_returned() {
    let env = docker_env("");
    let name = unique("exists");
    let existing = docker(&["create", "--name", &name, busybox_image(), "sleep", "60"]);
    env.berth(&[
        "create",
        "--backend",
        "docker",
        "--name",
        &name,
        busybox_image(),
        "true",
    ])
    .ok();
    env.berth(&["start", &name]).ok();
    // The command is the one Docker already had: berth adopted that container.
    assert_eq!(docker_inspect(&existing, "{{.State.Running}}"), "true");
    assert_eq!(
        docker(&[
            "ps",
            "-a",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("name=^{name}$")
        ]),
        existing
    );
    env.berth(&["rm", "-f", &name]).ok();
    assert_eq!(
        docker(&["ps", "-a", "-q", "--filter", &format!("name=^{name}$")]),
        ""
    );
}

#[test]
fn images_pull_from_the_loopback_registry_list_inspect_and_remove() {
    let env = docker_env("");
    let image = registry::busybox_image();
    let _ = std::process::Command::new("docker")
        .args(["rmi", "-f", image])
        .output();

    let pull = env
        .berth(&["image", "--backend", "docker", "pull", image])
        .ok();
    // Not a terminal: one plain line per step, no progress bars.
    assert!(pull.stderr.contains("Pull complete"), "{pull:?}");
    assert!(!pull.stderr.contains('\r'), "{pull:?}");
    assert!(
        pull.stdout.starts_with(&format!("Pulled {image}")),
        "{pull:?}"
    );

    let list = env
        .berth(&["image", "--backend", "docker", "ls", "--json"])
        .ok()
        .json();
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["names"].as_array().unwrap().iter().any(|n| n == image))
        .unwrap_or_else(|| panic!("{image} not listed: {list}"));
    assert_eq!(listed["backend"], "docker");
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|i| !i["names"].as_array().unwrap().is_empty()),
        "untagged images are skipped: {list}"
    );
    let inspected = env
        .berth(&["image", "--backend", "docker", "inspect", image])
        .ok()
        .json();
    assert_eq!(inspected[0]["id"], listed["id"]);

    // The pulled image runs, with its own default command.
    let run = env
        .berth(&["run", "--rm", "--backend", "docker", image])
        .ok();
    assert!(run.stdout.ends_with("registry\n"), "{run:?}");

    // On a terminal the same pull draws progress bars in place: the layer's and the total.
    env.berth(&["image", "--backend", "docker", "rm", image])
        .ok();
    let line = format!(
        "{} --config {} image --backend docker pull {image}",
        berth_exe().display(),
        env.config.display()
    );
    let tty = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{screen}");
    assert!(screen.contains("\r\x1b[2K"), "{screen:?}");
    for drawn in ["Pull complete", "[====", "total"] {
        assert!(screen.contains(drawn), "{drawn:?} not drawn: {screen:?}");
    }

    env.berth(&["image", "--backend", "docker", "rm", image])
        .ok();
    let gone = env.berth(&["image", "--backend", "docker", "inspect", image]);
    assert_eq!(gone.code, 66, "{gone:?}");

    let missing = env.berth(&[
        "image",
        "--backend",
        "docker",
        "pull",
        "127.0.0.1:5000/berth-test/absent:none",
    ]);
    assert_ne!(missing.code, 0);
    assert!(missing.stderr.contains("absent"), "{missing:?}");

    // dockerd pulls by itself: a mirror berth was given is refused, not skipped.
    let mirrored = docker_env("[registries.\"mirror.invalid\"]\nmirror = \"127.0.0.1:5000\"\n");
    let refused = mirrored.berth(&[
        "image",
        "--backend",
        "docker",
        "pull",
        "mirror.invalid/berth-test/busybox:local",
    ]);
    assert_eq!(refused.code, 76, "{refused:?}");
    assert!(refused.stderr.contains("registry-mirrors"), "{refused:?}");
}

#[test]
fn stats_show_the_work_a_container_did() {
    let env = docker_env("");
    let name = unique("stats");
    run_detached(
        &env,
        &name,
        &[],
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; dd if=/dev/zero of=/tmp/f bs=1M count=8; sleep 60",
        ],
    );
    let figures = env.stats_after_work(&name, 50_000_000);
    assert!(
        figures["memory_usage_bytes"].as_u64().unwrap() > 0,
        "{figures}"
    );
    for key in [
        "memory_cache_bytes",
        "net_rx_bytes",
        "net_tx_bytes",
        "block_read_bytes",
        "block_write_ops",
    ] {
        assert!(figures[key].is_u64(), "{key} missing: {figures}");
    }
    let table = env.berth(&["stats", &name]).ok().stdout;
    assert!(
        table.contains("CPU TIME") && table.contains(&name),
        "{table}"
    );
}

#[test]
fn a_dead_daemon_is_a_clear_error_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    // What a killed dockerd leaves behind: a socket file nobody listens on.
    let socket = dir.path().join("docker.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let env = BerthEnv::new(&format!(
        "[backends.docker]\ntype = \"docker\"\nsocket = \"unix://{}\"\n",
        socket.display()
    ))
    .with_busybox();

    let run = env.berth(&[
        "run",
        "--rm",
        "--backend",
        "docker",
        "busybox:local",
        "true",
    ]);
    assert_eq!(run.code, 69, "{run:?}");
    assert!(
        run.stderr.contains(&socket.display().to_string()),
        "{run:?}"
    );
    assert!(run.stderr.contains("dockerd"), "{run:?}");
    assert_eq!(env.berth(&["ps", "-a", "-q"]).ok().stdout, "");

    // A direct call retries three times, then names the socket and the fix.
    let ls = env.berth(&["image", "--backend", "docker", "ls"]);
    assert_eq!(ls.code, 69, "{ls:?}");
    assert!(ls.stderr.contains("is dockerd running?"), "{ls:?}");
    assert!(ls.stderr.contains("[backends.docker].socket"), "{ls:?}");

    // The native backend is unaffected.
    assert_eq!(
        env.berth(&["run", "--rm", "busybox:local", "echo", "ok"])
            .ok()
            .stdout,
        "ok\n"
    );
    let backends = env.berth(&["backend", "ls", "--json"]);
    assert_eq!(
        backends.code, 69,
        "an unhealthy backend fails the listing: {backends:?}"
    );
    assert_eq!(backends.json()[1]["healthy"], false);
}

#[test]
fn the_selector_plugin_sends_a_labelled_container_to_docker() {
    let env = docker_env(&format!(
        "[[plugins]]\nname = \"selector\"\npath = \"{}\"\nworlds = [\"backend-policy\"]\ngrants = [\"containers\"]\n",
        SELECTOR.path().display()
    ))
    .with_busybox();
    let name = unique("selected");
    env.berth(&[
        "run",
        "-d",
        "--name",
        &name,
        "-l",
        "berth.backend=docker",
        busybox_image(),
        "sleep",
        "60",
    ])
    .ok();
    let info = env.berth(&["inspect", &name]).ok().json();
    assert_eq!(info[0]["backend"], "docker");
    assert_eq!(docker_inspect(&name, "{{.State.Running}}"), "true");
    let events = env.berth(&["events", "--json"]).ok().stdout;
    assert!(
        events.contains("\"selector\"") && events.contains("docker"),
        "{events}"
    );

    // Unlabelled, it stays on the first healthy backend: native.
    env.berth(&[
        "run",
        "-d",
        "--name",
        "plain",
        "busybox:local",
        "sleep",
        "60",
    ])
    .ok();
    assert_eq!(
        env.berth(&["inspect", "plain"]).ok().json()[0]["backend"],
        "native"
    );
}

/// The selector routes by what a spec's networking needs: with Docker first, a plain container
/// goes to Docker, and one on a berth network goes to the first backend that has `networks`.
#[test]
fn the_selector_sends_a_container_on_a_berth_network_to_a_backend_with_networks() {
    let env = docker_env(&format!(
        "[[plugins]]\nname = \"selector\"\npath = \"{}\"\nworlds = [\"backend-policy\"]\n",
        SELECTOR.path().display()
    ))
    .with_busybox();
    // Docker first: the native table moves to the end.
    let native = "[backends.native]\ntype = \"native\"\n\n";
    let config = std::fs::read_to_string(&env.config).unwrap();
    assert!(config.contains(native), "{config}");
    std::fs::write(&env.config, config.replace(native, "") + "\n" + native).unwrap();

    let plain = unique("plain");
    env.berth(&["create", "--name", &plain, busybox_image(), "true"])
        .ok();
    let networked = unique("networked");
    env.berth(&[
        "create",
        "--name",
        &networked,
        "--network",
        "berth",
        "busybox:local",
        "true",
    ])
    .ok();
    let backend = |name: &str| env.berth(&["inspect", name]).ok().json()[0]["backend"].clone();
    assert_eq!(backend(&plain), "docker");
    assert_eq!(backend(&networked), "native");
    env.berth(&["rm", &plain, &networked]).ok();
}

#[test]
fn commit_is_docker_commit_and_there_is_no_rollback() {
    let env = docker_env("");
    let name = unique("commit");
    run_detached(
        &env,
        &name,
        &[],
        &["sh", "-c", "echo v1 > /etc/version; exec sleep 600"],
    );
    // The file is written once the container runs; exec sees it before committing.
    let seen = env.berth(&[
        "exec",
        &name,
        "sh",
        "-c",
        "while ! cat /etc/version; do sleep 0.1; done",
    ]);
    assert_eq!(seen.stdout, "v1\n", "{seen:?}");

    let version = env.berth(&["commit", &name]).ok().stdout.trim().to_string();
    let id = env.berth(&["inspect", &name]).ok().json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(version.starts_with(&format!("{id}-v")), "{version}");
    // An image Docker knows, holding what the container wrote; the container carried on.
    let image = docker(&["image", "inspect", "--format", "{{.Id}}", &version]);
    assert!(image.starts_with("sha256:"), "{image}");
    let ran = env
        .berth(&[
            "run",
            "--rm",
            "--backend",
            "docker",
            &version,
            "cat",
            "/etc/version",
        ])
        .ok();
    assert_eq!(ran.stdout, "v1\n");
    assert_eq!(
        env.berth(&["inspect", &name]).ok().json()[0]["state"],
        "running"
    );

    // A name of one's choosing; rollback is not something Docker can do.
    let named = format!("{name}-image:kept");
    assert_eq!(
        env.berth(&["commit", &name, &named]).ok().stdout.trim(),
        named
    );
    let refused = env.berth(&["rollback", &name, &version]);
    assert_eq!(refused.code, 76, "{refused:?}");
    let refused = env.berth(&["snapshot", "--backend", "docker", "ls"]);
    assert_eq!(refused.code, 76, "{refused:?}");
    // Nor can it keep a container's filesystem: refused before anything is removed.
    let refused = env.berth(&["rm", "-f", "--keep-snapshot", &name]);
    assert_eq!(refused.code, 76, "{refused:?}");
    env.berth(&["inspect", &name]).ok();

    env.berth(&["rm", "-f", &name]).ok();
    docker(&["image", "rm", &version, &named]);
}

/// With dockerd down, one command pays for finding that out once, not once per container it
/// lists: the socket here answers no call, and counts how often it is tried.
#[test]
fn a_dead_daemon_is_tried_once_per_command_not_once_per_container() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let env = docker_env("");
    let names: Vec<String> = (0..3).map(|i| unique(&format!("down-{i}"))).collect();
    for name in &names {
        env.berth(&[
            "create",
            "--backend",
            "docker",
            "--name",
            name,
            busybox_image(),
            "true",
        ])
        .ok();
    }
    let socket = env.dir.path().join("refusing.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let tries = Arc::new(AtomicUsize::new(0));
    let counted = tries.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    let text = std::fs::read_to_string(&env.config).unwrap().replacen(
        "type = \"docker\"\n",
        &format!(
            "type = \"docker\"\nsocket = \"unix://{}\"\n",
            socket.display()
        ),
        1,
    );
    let dead = env.dir.path().join("dead.toml");
    std::fs::write(&dead, text).unwrap();
    let dead = dead.display().to_string();

    let ps = berth_tests::env::run_berth(&["--config", &dead, "ps", "-a", "--json"]);
    assert_eq!(ps.code, 0, "{ps:?}");
    let rows = serde_json::from_str::<serde_json::Value>(&ps.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 3, "{rows}");
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] == "dead"),
        "{rows}"
    );
    let tried = tries.load(Ordering::SeqCst);
    assert!(
        (1..=3).contains(&tried),
        "three containers, one command: the daemon was tried {tried} times"
    );

    let mut rm = vec!["rm", "-f"];
    rm.extend(names.iter().map(String::as_str));
    env.berth(&rm).ok();
}

/// gc's two halves of a record/backend mismatch: a container Docker holds for this
/// installation that berth has no record of is removed (with its stale lock file), and a
/// record whose container was removed behind berth's back is dropped; another installation's
/// container on the same daemon is not touched.
#[test]
fn gc_removes_unrecorded_containers_and_records_whose_container_is_gone() {
    let env = docker_env("");
    let other = docker_env("");
    let (lost, gone, theirs) = (unique("gc-lost"), unique("gc-gone"), unique("gc-theirs"));
    let create = |env: &BerthEnv, name: &str| {
        let args = [
            "create",
            "--backend",
            "docker",
            "--name",
            name,
            busybox_image(),
            "true",
        ];
        env.berth(&args).ok();
    };
    create(&env, &lost);
    create(&env, &gone);
    create(&other, &theirs);
    let lost_id = env.berth(&["inspect", &lost]).ok().json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let lock = env
        .run_dir()
        .join("locks/containers")
        .join(format!("{lost_id}.lock"));
    assert!(lock.exists(), "{}", lock.display());
    std::fs::remove_dir_all(env.state_dir().join("containers").join(&lost_id)).unwrap();
    docker(&["rm", "-f", &gone]);

    let gc = env.berth(&["gc", "--json"]).ok().json();
    let removed = gc["removed"].to_string();
    assert!(
        removed.contains(&format!("docker container {lost}")) && removed.contains("no record"),
        "{gc}"
    );
    assert!(
        removed.contains(&format!("container {gone}")) && removed.contains("no longer has it"),
        "{gc}"
    );
    assert_eq!(gc["failed"], serde_json::json!([]), "{gc}");
    let listed = docker(&["ps", "-a", "--filter", &format!("name=^{lost}$"), "-q"]);
    assert_eq!(listed, "", "the unrecorded container is gone from Docker");
    assert_eq!(
        env.berth(&["ps", "-a", "--json"]).ok().json(),
        serde_json::json!([])
    );
    assert!(!lock.exists(), "its stale lock file went too");
    // The other installation's container stands.
    assert_eq!(docker_inspect(&theirs, "{{.Name}}"), format!("/{theirs}"));
    other.berth(&["rm", "-f", &theirs]).ok();
}

#[test]
fn logs_are_tailed_windowed_and_timestamped_as_docker_keeps_them() {
    let env = docker_env("");
    berth_tests::logs::log_filters_flow(&env, "docker", busybox_image());
}

/// `[placement] fallback`: a daemon that answers its probe and then drops the create sends the
/// container down the chain (said on stderr, recorded in the decision log; a kill between the
/// attempts is undone by gc), never in place of the user's own `--backend`, and without a
/// chain the create fails with 69 leaving nothing.
#[test]
fn a_daemon_that_drops_the_create_sends_the_container_down_the_fallback_chain() {
    let image = busybox_image();
    let dropping = DroppingDocker::start("/containers/create");
    let env = BerthEnv::new("");
    let config = |placement: &str| {
        let text = format!(
            "[host]\nstate-dir = \"{}\"\nrun-dir = \"{}\"\n\n[backends.docker]\ntype = \"docker\"\n\
             socket = \"unix://{}\"\n\n[backends.native]\ntype = \"native\"\n\n{placement}\n{}",
            env.state_dir().display(),
            env.run_dir().display(),
            dropping.socket.display(),
            env.network.config()
        );
        std::fs::write(&env.config, text).unwrap();
    };
    config("[placement]\nfallback = [\"docker\", \"native\"]\n");
    let rootfs = berth_tests::env::busybox_rootfs().to_str().unwrap();
    env.berth(&[
        "image",
        "--backend",
        "native",
        "import",
        "--rootfs",
        rootfs,
        image,
    ])
    .ok();

    let name = unique("fallback");
    let run = env
        .berth(&["run", "-d", "--name", &name, image, "sleep", "60"])
        .ok();
    assert!(run.stderr.contains("falling back"), "{run:?}");
    let info = env.berth(&["inspect", &name]).ok().json();
    assert_eq!(info[0]["backend"], "native", "{info}");
    assert_eq!(info[0]["state"], "running", "{info}");
    let events = env.berth(&["events", "--json"]).ok().stdout;
    let fallback = events
        .lines()
        .find(|l| l.contains("\"fallback\""))
        .unwrap_or_else(|| panic!("no fallback recorded: {events}"));
    assert!(fallback.contains("docker -> native"), "{fallback}");
    assert_eq!(
        docker(&["ps", "-a", "-q", "--filter", &format!("name={name}")]),
        "",
        "dockerd never got it"
    );

    // Killed between the attempts: the next berth finds a claim and undoes it whole.
    berth_tests::env::killed_at(
        &env,
        "create.fell-back",
        &["run", "-d", "--name", "killed", image, "sleep", "60"],
    );
    env.berth(&["gc"]).ok();
    let undone = env.berth(&["gc", "--dry-run", "--json"]).ok().json();
    assert_eq!(undone["removed"], serde_json::json!([]), "{undone}");
    assert_eq!(
        env.berth(&["ps", "-a", "-q"]).ok().stdout.lines().count(),
        1
    );
    let again = env.berth(&["run", "-d", "--name", "killed", image, "sleep", "60"]);
    assert_eq!(again.ok().code, 0);
    env.berth(&["rm", "-f", "killed"]).ok();

    // The user's own choice is not replaced.
    let asked = env.berth(&["run", "-d", "--backend", "docker", image, "true"]);
    assert_eq!(asked.code, 69, "{asked:?}");
    // Without a chain, the same create fails and leaves nothing.
    config("");
    let alone = env.berth(&["run", "-d", image, "sleep", "60"]);
    assert_eq!(alone.code, 69, "{alone:?}");
    assert!(!alone.stderr.contains("falling back"), "{alone:?}");
    let left = env.berth(&["ps", "-a", "-q"]).ok().stdout;
    assert_eq!(left.lines().count(), 1, "only the first container: {left}");
    env.berth(&["rm", "-f", &name]).ok();
}
