//! Container networking through Debian's real CNI plugins (bridge, host-local, portmap,
//! firewall), on the native and the containerd backends alike: containers that reach each
//! other by address and by name, published ports, static addresses, generated resolv.conf and
//! /etc/hosts, and nothing left behind after rm or after gc following a crash. Traffic goes
//! only to 127.0.0.1 and to containers these tests created.

use std::net::TcpStream;
use std::path::Path;

use berth_tests::containerd::{busybox_image, containerd_backend};
use berth_tests::env::BerthEnv;

/// One backend under test: its installation and how a `run`/`create` names it.
struct Host {
    env: BerthEnv,
    backend: &'static str,
}

impl Host {
    fn native() -> Host {
        Host {
            env: BerthEnv::new("").with_busybox(),
            backend: "native",
        }
    }

    fn containerd() -> Host {
        busybox_image();
        Host {
            env: BerthEnv::new(&containerd_backend()),
            backend: "containerd",
        }
    }

    /// `berth <verb> --backend B <args>` for run and create.
    fn container(&self, verb: &str, args: &[&str]) -> berth_tests::env::Run {
        let mut all = vec![verb, "--backend", self.backend];
        all.extend(args);
        self.env.berth(&all)
    }

    fn berth(&self, args: &[&str]) -> berth_tests::env::Run {
        self.env.berth(args)
    }

    /// A network of the test's own, in its slot's address space.
    fn network(&self, name: &str, n: u8) -> String {
        let subnet = self.env.network.subnet(n);
        self.berth(&["network", "create", name, "--subnet", &subnet])
            .ok();
        subnet
    }

    fn inspect(&self, container: &str) -> serde_json::Value {
        self.berth(&["inspect", container]).ok().json()[0].clone()
    }

    /// The container's address on its first network.
    fn address(&self, container: &str) -> String {
        let info = self.inspect(container);
        let cidr = info["networks"][0]["address"]
            .as_str()
            .unwrap_or_else(|| panic!("{info}"));
        cidr.split('/').next().unwrap().to_string()
    }
}

const IMAGE: &str = "busybox:local";

/// busybox httpd serving `text` on port 80.
fn serve(text: &str) -> String {
    format!("mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 80 -h /www")
}

/// Every interface, iptables rule and IPAM lease that names `id` (or its veth).
fn traces_of(env: &BerthEnv, id: &str) -> Vec<String> {
    let mut traces = Vec::new();
    let rules = std::process::Command::new("iptables-save")
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&rules.stdout).lines() {
        if line.contains(id) || line.contains(&id[..12]) {
            traces.push(format!("iptables: {line}"));
        }
    }
    let ipam = env.state_dir().join("networks").join("ipam");
    for lease in walk(&ipam) {
        if std::fs::read_to_string(&lease).is_ok_and(|t| t.contains(id)) {
            traces.push(format!("lease: {}", lease.display()));
        }
    }
    let netns = env.run_dir().join("netns").join(id);
    if netns.exists() {
        traces.push(format!("netns: {}", netns.display()));
    }
    traces
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .flat_map(|e| {
            let path = e.path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

/// The host's veth interfaces whose peer sits on `bridge`, once those of removed containers
/// are gone: the kernel deletes them with their network namespace, in the background, so one
/// may outlive its container's `rm` by a few milliseconds (up to 5 s are waited for, until
/// at most `live` are left).
fn veths_left_on(bridge: &str) -> Vec<String> {
    veths_of_live(bridge, 0)
}

fn veths_of_live(bridge: &str, live: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let veths = veths_on(bridge);
        if veths.len() <= live || std::time::Instant::now() > deadline {
            return veths;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The host's veth interfaces whose peer sits on `bridge`.
fn veths_on(bridge: &str) -> Vec<String> {
    let dir = Path::new("/sys/class/net").join(bridge).join("brif");
    std::fs::read_dir(dir)
        .map(|e| {
            e.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn id_of(host: &Host, name: &str) -> String {
    host.inspect(name)["id"].as_str().unwrap().to_string()
}

fn containers_on_one_network_talk_by_address_and_name(host: Host) {
    host.network("web", 1);
    host.container(
        "run",
        &[
            "-d",
            "--name",
            "srv",
            "--network",
            "web",
            IMAGE,
            "sh",
            "-c",
            &serve("hello"),
        ],
    )
    .ok();
    let address = host.address("srv");
    for target in [address.as_str(), "srv"] {
        let url = format!("http://{target}/");
        // httpd may take a moment to listen: retry within the client.
        let script =
            format!("for i in $(seq 50); do wget -q -O - {url} && exit 0; sleep 0.1; done; exit 1");
        let got = host
            .container(
                "run",
                &["--rm", "--network", "web", IMAGE, "sh", "-c", &script],
            )
            .ok();
        assert_eq!(got.stdout, "hello\n", "{target}: {got:?}");
    }
    // ps shows where it is; inspect says which network and gateway.
    let info = host.inspect("srv");
    assert_eq!(info["networks"][0]["network"], "web", "{info}");
    assert_eq!(info["ip_address"], address.as_str(), "{info}");

    let id = id_of(&host, "srv");
    let bridge = host.berth(&["network", "inspect", "web"]).ok().json()[0]["bridge"]
        .as_str()
        .unwrap()
        .to_string();
    // The clients' veths go with their namespaces, in the background.
    let veths = veths_of_live(&bridge, 1);
    assert_eq!(veths.len(), 1, "srv's veth is on the bridge");

    // gc CHECKs running containers' networks: fine now, reported once the veth is gone.
    let checked = host.berth(&["gc", "--json"]).ok().json();
    assert_eq!(checked["failed"], serde_json::json!([]), "{checked}");
    let deleted = std::process::Command::new("ip")
        .args(["link", "delete", &veths[0]])
        .status()
        .unwrap();
    assert!(deleted.success());
    let checked = host.berth(&["gc", "--json"]);
    assert_ne!(checked.code, 0, "{checked:?}");
    let failed = checked.json()["failed"].to_string();
    assert!(
        failed.contains("srv") && failed.contains("CHECK"),
        "{failed}"
    );
    let in_use = host.berth(&["network", "rm", "web"]);
    assert_eq!(in_use.code, 73, "{in_use:?}");
    assert!(in_use.stderr.contains("srv"), "{in_use:?}");

    host.berth(&["rm", "-f", "srv"]).ok();
    assert_eq!(traces_of(&host.env, &id), Vec::<String>::new());
    assert_eq!(veths_left_on(&bridge), Vec::<String>::new());
    host.berth(&["network", "rm", "web"]).ok();
    assert!(
        !Path::new("/sys/class/net").join(&bridge).exists(),
        "the bridge went with its network"
    );
    let rules = std::process::Command::new("iptables-save")
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout);
    assert!(
        !rules.contains(&bridge),
        "the network's rules went with it: {rules}"
    );
    assert_eq!(host.berth(&["network", "inspect", "web"]).code, 66);
}

#[test]
fn native_containers_on_one_network_talk_by_address_and_name() {
    containers_on_one_network_talk_by_address_and_name(Host::native());
}

#[test]
fn containerd_containers_on_one_network_talk_by_address_and_name() {
    containers_on_one_network_talk_by_address_and_name(Host::containerd());
}

fn none_has_loopback_only_and_host_sees_the_hosts_interfaces(host: Host) {
    let none = host
        .container(
            "run",
            &["--rm", "--network", "none", IMAGE, "ls", "/sys/class/net"],
        )
        .ok();
    assert_eq!(none.stdout, "lo\n", "{none:?}");
    let ours = host
        .container(
            "run",
            &["--rm", "--network", "host", IMAGE, "ls", "/sys/class/net"],
        )
        .ok();
    let mut expected: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    expected.sort();
    let mut seen: Vec<&str> = ours.stdout.lines().collect();
    seen.sort();
    // Interfaces of tests running alongside come and go: the host's own ones must be there.
    for name in ["lo", "docker0"]
        .iter()
        .filter(|n| expected.contains(&n.to_string()))
    {
        assert!(seen.contains(name), "{name} missing from {seen:?}");
    }
    // The default network: a bridge address in the slot's subnet, and a route out.
    let default = host
        .container(
            "run",
            &["--rm", IMAGE, "ip", "-4", "-o", "addr", "show", "eth0"],
        )
        .ok();
    let prefix = host.env.network.subnet(0);
    let prefix = prefix.trim_end_matches("0/24");
    assert!(
        default.stdout.contains(&format!("inet {prefix}")),
        "{default:?}"
    );
}

#[test]
fn native_none_has_loopback_only_and_host_sees_the_hosts_interfaces() {
    none_has_loopback_only_and_host_sees_the_hosts_interfaces(Host::native());
}

#[test]
fn containerd_none_has_loopback_only_and_host_sees_the_hosts_interfaces() {
    none_has_loopback_only_and_host_sees_the_hosts_interfaces(Host::containerd());
}

/// A host port to publish, never the same twice in this process (sibling tests run in other
/// installs, whose port claims do not see each other's) and below the kernel's ephemeral
/// range, so no outgoing connection takes it meanwhile; skips ports something listens on.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Test binaries run one after another; the pid keeps a rerun off a previous run's ports.
    let base = 20_000 + (std::process::id() % 500) as u16 * 16;
    loop {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed);
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
}

fn a_published_port_answers_on_localhost_and_is_given_once(host: Host) {
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    host.container(
        "run",
        &[
            "-d",
            "--name",
            "pub",
            "-p",
            &publish,
            IMAGE,
            "sh",
            "-c",
            &serve("published"),
        ],
    )
    .ok();
    let mut answer = String::new();
    for _ in 0..100 {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .unwrap();
            let _ = stream.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let _ = stream.read_to_string(&mut answer);
            if answer.contains("published") {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(answer.ends_with("published\n"), "{answer:?}");
    let listed = host.berth(&["ps"]).ok();
    assert!(
        listed.stdout.contains(&format!("127.0.0.1:{port}->80/tcp")),
        "{listed:?}"
    );

    let before = host.berth(&["ps", "-a", "-q"]).ok().stdout;
    let second = host.container(
        "run",
        &["-d", "--name", "again", "-p", &publish, IMAGE, "true"],
    );
    assert_eq!(second.code, 73, "{second:?}");
    assert!(
        second.stderr.contains("pub"),
        "names the holder: {second:?}"
    );
    assert_eq!(
        host.berth(&["ps", "-a", "-q"]).ok().stdout,
        before,
        "nothing created"
    );

    let id = id_of(&host, "pub");
    host.berth(&["rm", "-f", "pub"]).ok();
    assert_eq!(traces_of(&host.env, &id), Vec::<String>::new());
    // The port is free again.
    host.container(
        "create",
        &["--name", "again", "-p", &publish, IMAGE, "true"],
    )
    .ok();
}

#[test]
fn native_a_published_port_answers_on_localhost_and_is_given_once() {
    a_published_port_answers_on_localhost_and_is_given_once(Host::native());
}

#[test]
fn containerd_a_published_port_answers_on_localhost_and_is_given_once() {
    a_published_port_answers_on_localhost_and_is_given_once(Host::containerd());
}

fn static_addresses_and_resolver_files_are_exact(host: Host) {
    let subnet = host.network("fixed", 2);
    let base = subnet.trim_end_matches("0/24");
    let ip = format!("{base}77");
    let ran = host
        .container(
            "run",
            &[
                "--rm",
                "--name",
                "pinned",
                "--hostname",
                "pinned-host",
                "--network",
                "fixed",
                "--ip",
                &ip,
                "--dns",
                "192.0.2.53",
                "--dns-search",
                "corp.example",
                "--dns-option",
                "ndots:2",
                "--add-host",
                "db:192.0.2.10",
                IMAGE,
                "sh",
                "-c",
                "ip -4 -o addr show eth0; cat /etc/resolv.conf; echo ---; cat /etc/hosts; \
                 echo ---; cat /etc/hostname",
            ],
        )
        .ok();
    let (addr, rest) = ran.stdout.split_once('\n').unwrap();
    assert!(addr.contains(&format!("inet {ip}/24")), "{ran:?}");
    let parts: Vec<&str> = rest.split("---\n").collect();
    assert_eq!(
        parts[0],
        "# Generated by berth\n\nsearch corp.example\nnameserver 192.0.2.53\noptions ndots:2\n\n"
    );
    assert!(
        parts[1].ends_with(&format!(
            "ff02::2\tip6-allrouters\n{ip}\tpinned-host pinned\n192.0.2.10\tdb\n"
        )),
        "{ran:?}"
    );
    assert!(parts[1].starts_with("# Generated by berth"), "{ran:?}");
    assert_eq!(parts[2], "pinned-host\n");

    let outside = host.container(
        "create",
        &["--network", "fixed", "--ip", "10.254.254.9", IMAGE, "true"],
    );
    assert_eq!(outside.code, 64, "{outside:?}");
    assert!(outside.stderr.contains(&subnet), "{outside:?}");
    assert_eq!(host.berth(&["ps", "-a", "-q"]).ok().stdout, "");
    host.berth(&["network", "rm", "fixed"]).ok();
}

#[test]
fn native_static_addresses_and_resolver_files_are_exact() {
    static_addresses_and_resolver_files_are_exact(Host::native());
}

#[test]
fn containerd_static_addresses_and_resolver_files_are_exact() {
    static_addresses_and_resolver_files_are_exact(Host::containerd());
}

/// berth killed while a start was attaching its network: the next `gc` (after the container
/// is removed) leaves no veth, rule, lease or namespace of it.
fn a_start_killed_during_network_setup_is_collected(host: Host) {
    host.container(
        "create",
        &[
            "--name",
            "half",
            "-p",
            &free_port().to_string(),
            IMAGE,
            "sleep",
            "60",
        ],
    )
    .ok();
    let id = id_of(&host, "half");
    for point in ["network.attach-intended", "network.deleted"] {
        let killed = host
            .env
            .command(&["start", "half"])
            .env("BERTH_CRASH_AT", point)
            .output()
            .unwrap();
        assert!(!killed.status.success(), "{point}: {killed:?}");
    }
    // The start goes through after the crashes; rm and gc leave nothing.
    host.berth(&["start", "half"]).ok();
    host.berth(&["rm", "-f", "half"]).ok();
    host.berth(&["gc"]).ok();
    assert_eq!(traces_of(&host.env, &id), Vec::<String>::new());
    assert_eq!(
        veths_left_on(&host.env.network.bridge()),
        Vec::<String>::new()
    );

    // A create killed after its port was claimed and its files written: gc gives both back.
    let port = free_port().to_string();
    let killed = host
        .env
        .command(&[
            "create",
            "--backend",
            host.backend,
            "--name",
            "lost",
            "-p",
            &port,
            IMAGE,
            "true",
        ])
        .env("BERTH_CRASH_AT", "create.intended")
        .output()
        .unwrap();
    assert!(!killed.status.success(), "{killed:?}");
    let networks = host.env.state_dir().join("networks");
    assert_eq!(
        walk(&networks.join("ports")).len(),
        1,
        "the claim the create left"
    );
    let dry = host.berth(&["gc", "--dry-run", "--json"]).ok().json();
    assert!(dry.to_string().contains("lost"), "{dry}");
    host.berth(&["gc"]).ok();
    assert_eq!(
        walk(&networks.join("ports")),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(
        walk(&networks.join("containers")),
        Vec::<std::path::PathBuf>::new()
    );
    host.container("create", &["--name", "lost", "-p", &port, IMAGE, "true"])
        .ok();
}

#[test]
fn native_a_start_killed_during_network_setup_is_collected() {
    a_start_killed_during_network_setup_is_collected(Host::native());
}

#[test]
fn containerd_a_start_killed_during_network_setup_is_collected() {
    a_start_killed_during_network_setup_is_collected(Host::containerd());
}

/// The default network's conflist gone between create and start (deleted by hand): the start
/// makes it again rather than failing or waiting on its own lock.
#[test]
fn a_start_remakes_a_default_network_that_went_missing() {
    let host = Host::native();
    host.container("create", &["--name", "late", IMAGE, "sleep", "60"])
        .ok();
    let conflist = host.env.state_dir().join("networks/berth.conflist");
    std::fs::remove_file(&conflist).unwrap();
    // A start that waits on its own lock would hang: it gets a minute.
    let mut start = host.env.command(&["start", "late"]).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = start.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            start.kill().unwrap();
            panic!("start did not finish within a minute");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert!(conflist.exists());
    assert!(
        host.address("late")
            .starts_with(host.env.network.subnet(0).trim_end_matches("0/24"))
    );
}
