//! The native backend through the `berth` binary: limits, supervisors, and the image store with
//! archives written here byte by byte (docker-archive and OCI layout), hostile ones included.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_tests::archives::{docker_archive, file_header, layer, oci_layout, sha256_hex};
use berth_tests::env::BerthEnv;

const IMAGE: &str = "busybox:local";

fn two_layers() -> Vec<Vec<u8>> {
    vec![
        layer(true, &[("etc/keep", "kept"), ("etc/gone", "deleted above")]),
        layer(false, &[("etc/.wh.gone", ""), ("etc/added", "new")]),
    ]
}

/// Entries under `dir`, recursively; empty when it does not exist.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(read) = fs::read_dir(dir) {
        for entry in read.flatten() {
            found.push(entry.path());
        }
    }
    found
}

#[test]
fn the_rootfs_is_writable_and_private_to_the_container() {
    let env = BerthEnv::new("").with_busybox();
    let ran = env.berth(&[
        "run",
        "--rm",
        IMAGE,
        "sh",
        "-c",
        "echo written > /etc/new && cat /etc/new",
    ]);
    assert_eq!(ran.ok().stdout, "written\n");
    let fresh = env.berth(&["run", "--rm", IMAGE, "cat", "/etc/new"]);
    assert_ne!(fresh.code, 0, "{fresh:?}");
}

#[test]
fn a_memory_limit_kills_the_process_that_exceeds_it() {
    let env = BerthEnv::new("").with_busybox();
    let script = "dd if=/dev/zero of=/dev/shm/fill bs=1M count=48 2>/dev/null; echo dd=$?";
    let limited = env
        .berth(&["run", "--rm", "--memory", "16m", IMAGE, "sh", "-c", script])
        .ok();
    assert_eq!(
        limited.stdout, "dd=137\n",
        "killed by the OOM killer: {limited:?}"
    );
    let unlimited = env.berth(&["run", "--rm", IMAGE, "sh", "-c", script]).ok();
    assert_eq!(unlimited.stdout, "dd=0\n");
}

/// `berth update` changes a running container's limits in place, as `docker update`: the
/// cgroup inside shows them, a restart keeps them; a stopped container is refused (73).
#[test]
fn update_changes_a_running_containers_limits_and_a_restart_keeps_them() {
    let env = BerthEnv::new("").with_busybox();
    let id = env
        .berth(&["run", "-d", "--memory", "64m", IMAGE, "sleep", "300"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let read = |file: &str| {
        let path = format!("/sys/fs/cgroup/{file}");
        env.berth(&["exec", &id, "cat", &path])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    assert_eq!(
        read("memory/memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    env.berth(&["update", "--memory", "128m", "--cpus", "0.5", &id])
        .ok();
    assert_eq!(
        read("memory/memory.limit_in_bytes"),
        (128u64 << 20).to_string()
    );
    assert_eq!(read("cpu/cpu.cfs_quota_us"), "50000");
    env.berth(&["stop", "-t", "0", &id]).ok();
    let stopped = env.berth(&["update", "--memory", "32m", &id]);
    assert_eq!(stopped.code, 73, "{stopped:?}");
    env.berth(&["start", &id]).ok();
    assert_eq!(
        read("memory/memory.limit_in_bytes"),
        (128u64 << 20).to_string()
    );
    let none = env.berth(&["update", &id]);
    assert_eq!(none.code, 64, "{none:?}");
    env.berth(&["rm", "-f", &id]).ok();
}

#[test]
fn a_container_whose_supervisor_died_is_reported_dead_and_can_be_removed() {
    let env = BerthEnv::new("").with_busybox();
    let id = env
        .berth(&["run", "-d", IMAGE, "sleep", "600"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let pid = env.berth(&["inspect", &id]).ok().json()[0]["pid"]
        .as_u64()
        .expect("a running container has a pid");
    let killed = Command::new("pkill")
        .args(["-9", "-f", &format!("__native-supervise .*{id}")])
        .status()
        .unwrap();
    assert!(killed.success(), "no supervisor process for {id}");
    let mut state = serde_json::Value::Null;
    for _ in 0..50 {
        state = env.berth(&["inspect", &id]).ok().json()[0].clone();
        if state["state"] == "dead" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(state["state"], "dead", "{state}");
    assert!(
        state["status_detail"]
            .as_str()
            .unwrap()
            .contains("supervisor"),
        "{state}"
    );
    env.berth(&["rm", "-f", &id]).ok();
    // That very process, not any `sleep 600` (sibling tests run their own).
    let left = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        left != b"sleep\x00600\x00",
        "rm -f left the container's process {pid} running"
    );
}

#[test]
fn a_docker_archive_imports_with_whiteouts_and_image_defaults() {
    let env = BerthEnv::new("");
    let archive = env.dir.path().join("saved.tar");
    docker_archive(&archive, "wh:1", &two_layers(), None);
    env.berth(&["image", "import", &archive.display().to_string()])
        .ok();
    // The image's Cmd and Env apply; the second layer deleted etc/gone. (hostname, hosts and
    // resolv.conf are the container's network files, bind-mounted as docker's are.)
    let run = env.berth(&["run", "--rm", "wh:1"]).ok();
    assert_eq!(
        run.stdout,
        "added\nhostname\nhosts\nkeep\nresolv.conf\nwh:1\n"
    );
}

#[test]
fn a_named_user_is_looked_up_in_the_images_own_passwd() {
    let env = BerthEnv::new("");
    let archive = env.dir.path().join("user.tar");
    berth_tests::archives::named_user_archive(&archive, "named-user:1");
    let imported = env
        .berth(&["image", "import", &archive.display().to_string(), "--json"])
        .ok()
        .json();
    // Stored by the one naming rule, and found by the short name.
    assert_eq!(
        imported["names"][0], "docker.io/library/named-user:1",
        "{imported}"
    );
    // Only the top layer's /etc/passwd has nobody.
    let ran = env
        .berth(&["run", "--rm", "named-user:1", "sh", "-c", "id -u; id -g"])
        .ok();
    assert_eq!(ran.stdout, "65534\n65534\n");
}

#[test]
fn an_oci_layout_with_gzip_layers_imports_as_directory_and_as_tar() {
    let env = BerthEnv::new("");
    let layout = env.dir.path().join("layout");
    oci_layout(&layout, "oci:1", &two_layers());
    env.berth(&["image", "import", &layout.display().to_string()])
        .ok();
    assert_eq!(
        env.berth(&["run", "--rm", "oci:1"]).ok().stdout,
        "added\nhostname\nhosts\nkeep\nresolv.conf\noci:1\n"
    );

    let tarred = env.dir.path().join("layout.tar");
    let status = Command::new("tar")
        .args([
            "-C",
            &layout.display().to_string(),
            "-cf",
            &tarred.display().to_string(),
            ".",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    env.berth(&[
        "image",
        "import",
        &tarred.display().to_string(),
        "oci:tarred",
    ])
    .ok();
    assert_eq!(
        env.berth(&["run", "--rm", "oci:tarred"]).ok().stdout,
        "added\nhostname\nhosts\nkeep\nresolv.conf\noci:1\n"
    );
}

#[test]
fn malformed_archives_are_rejected_with_nothing_half_imported() {
    let env = BerthEnv::new("");
    let dir = env.dir.path();
    let layers = two_layers();

    let bad_digest = dir.join("bad-digest.tar");
    docker_archive(
        &bad_digest,
        "bad:1",
        &layers,
        Some(vec![sha256_hex(&layers[0]), "0".repeat(64)]),
    );

    let truncated = dir.join("truncated.tar");
    docker_archive(&truncated, "bad:2", &layers, None);
    let bytes = fs::read(&truncated).unwrap();
    fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();

    let no_manifest = dir.join("no-manifest.tar");
    let mut builder = tar::Builder::new(fs::File::create(&no_manifest).unwrap());
    builder
        .append_data(&mut file_header(2), "hello.txt", &b"hi"[..])
        .unwrap();
    builder.finish().unwrap();

    let garbage = dir.join("garbage.tar");
    fs::write(&garbage, b"this is not a tar archive at all").unwrap();

    for archive in [&bad_digest, &truncated, &no_manifest, &garbage] {
        let run = env.berth(&["image", "import", &archive.display().to_string()]);
        assert!(
            matches!(run.code, 64 | 65),
            "{}: {run:?}",
            archive.display()
        );
        assert!(run.stderr.contains("berth: error:"), "{run:?}");
    }
    assert_eq!(
        env.berth(&["image", "ls", "--json"]).ok().json(),
        serde_json::json!([])
    );
    let native = env.state_dir().join("native");
    assert!(
        entries(&native.join("layers")).is_empty(),
        "orphan layers: {:?}",
        entries(&native.join("layers"))
    );
    assert!(
        entries(&native.join("tmp")).is_empty(),
        "temp leftovers: {:?}",
        entries(&native.join("tmp"))
    );
}

#[test]
fn layers_are_shared_and_removed_only_when_unused() {
    let env = BerthEnv::new("");
    let layers = two_layers();
    let a = env.dir.path().join("a.tar");
    let b = env.dir.path().join("b.tar");
    docker_archive(&a, "shared:a", &layers, None);
    docker_archive(&b, "shared:b", &layers[..1], None);
    env.berth(&["image", "import", &a.display().to_string()])
        .ok();
    env.berth(&["image", "import", &b.display().to_string()])
        .ok();
    let layer_dir = env.state_dir().join("native").join("layers");
    assert_eq!(
        entries(&layer_dir).len(),
        2,
        "the base layer is stored once"
    );

    // In use by a container: refused unless forced.
    env.berth(&["create", "--name", "user", "shared:b", "true"])
        .ok();
    let refused = env.berth(&["image", "rm", "shared:b"]);
    assert_eq!(refused.code, 73, "{refused:?}");
    env.berth(&["rm", "user"]).ok();

    env.berth(&["image", "rm", "shared:a"]).ok();
    assert_eq!(
        entries(&layer_dir).len(),
        1,
        "the base layer is still used by shared:b"
    );
    env.berth(&["image", "rm", "shared:b"]).ok();
    assert!(entries(&layer_dir).is_empty());
}

#[test]
fn image_rm_with_force_removes_an_image_in_use() {
    let env = BerthEnv::new("").with_busybox();
    env.berth(&["create", "--name", "holder", IMAGE, "true"])
        .ok();
    env.berth(&["image", "rm", "--force", IMAGE]).ok();
    assert_eq!(
        env.berth(&["image", "ls", "--json"]).ok().json(),
        serde_json::json!([])
    );
}

#[test]
fn a_tar_header_with_garbage_fields_is_corrupt_data() {
    let env = BerthEnv::new("");
    // A header without owner fields, as no real tool writes it.
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(2);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, "etc/odd", &b"hi"[..])
        .unwrap();
    let odd = builder.into_inner().unwrap();
    let archive = env.dir.path().join("odd.tar");
    docker_archive(&archive, "odd:1", &[odd], None);
    let run = env.berth(&["image", "import", &archive.display().to_string()]);
    assert_eq!(run.code, 65, "{run:?}");
    assert!(run.stderr.contains("etc/odd"), "{run:?}");
}

#[test]
fn cpu_and_pids_limits_reach_the_containers_cgroup() {
    let env = BerthEnv::new("").with_busybox();
    let id = env
        .berth(&[
            "run",
            "-d",
            "--cpus",
            "0.5",
            "--pids-limit",
            "7",
            IMAGE,
            "sleep",
            "600",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    // cgroup v1 on this machine; the unified hierarchy's files where v2 is the only one.
    let v1 = Path::new("/sys/fs/cgroup/cpu").join("berth").join(&id);
    let (quota, pids) = if v1.exists() {
        (
            fs::read_to_string(v1.join("cpu.cfs_quota_us")).unwrap(),
            fs::read_to_string(
                Path::new("/sys/fs/cgroup/pids/berth")
                    .join(&id)
                    .join("pids.max"),
            )
            .unwrap(),
        )
    } else {
        let v2 = Path::new("/sys/fs/cgroup/berth").join(&id);
        (
            fs::read_to_string(v2.join("cpu.max")).unwrap(),
            fs::read_to_string(v2.join("pids.max")).unwrap(),
        )
    };
    assert!(
        quota.starts_with("50000"),
        "half a core per 100 ms period: {quota}"
    );
    assert_eq!(pids.trim(), "7");
    // And the pids limit bites: the shell cannot fork past it.
    let forks = env.berth(&[
        "exec",
        &id,
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8 9; do sleep 1 & done; wait",
    ]);
    assert!(forks.stderr.contains("can't fork"), "{forks:?}");
}

#[test]
fn stats_read_the_containers_cgroup() {
    let env = BerthEnv::new("").with_busybox();
    env.berth(&[
        "run", "-d", "--name", "busy", "--memory", "64m", IMAGE, "sh", "-c",
        "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; dd if=/dev/zero of=/tmp/f bs=1M count=8; sleep 60",
    ])
    .ok();
    let figures = env.stats_after_work("busy", 50_000_000);
    assert!(
        figures["memory_usage_bytes"].as_u64().unwrap() > 0,
        "{figures}"
    );

    env.berth(&["stop", "-t", "1", "busy"]).ok();
    let stopped = env.berth(&["stats", "busy"]);
    assert_eq!(stopped.code, 73, "{stopped:?}");
}

#[test]
fn images_are_pulled_from_a_registry_and_run() {
    let env = BerthEnv::new("");
    let image = berth_tests::registry::busybox_image();
    let pulled = env.berth(&["image", "pull", image, "--json"]).ok();
    assert_eq!(pulled.stderr, "", "--json shows no progress");
    let pulled = pulled.json();
    assert_eq!(pulled["names"][0], image, "{pulled}");
    // Off a terminal: a plain line per layer and step; with -q, none.
    let again = env.berth(&["image", "pull", image]).ok();
    assert!(again.stderr.contains(": Download complete\n"), "{again:?}");
    assert!(
        !again.stderr.contains('\x1b'),
        "no terminal codes off a terminal: {again:?}"
    );
    let quiet = env.berth(&["image", "pull", "-q", image]).ok();
    assert_eq!(quiet.stderr, "", "{quiet:?}");
    // Its config's command: `ls /etc; echo $MARKER`.
    let ran = env.berth(&["run", "--rm", image]).ok();
    assert!(ran.stdout.ends_with("registry\n"), "{ran:?}");
    // Nothing is left of the layout the pull staged.
    assert_eq!(
        entries(&env.run_dir().join("native-pull")),
        Vec::<PathBuf>::new()
    );
    let missing = env.berth(&["image", "pull", "127.0.0.1:5000/berth-test/absent:1"]);
    assert_eq!(missing.code, 66, "{missing:?}");
}

/// `[registries."HOST"] mirror`: an image of a registry that is not there (`.invalid`, never
/// resolved) is pulled from the loopback registry standing in for it, and keeps its own name.
#[test]
fn a_mirror_stands_in_for_a_registry_and_images_keep_their_names() {
    let served = format!(
        "{}/berth-test/mirrored:{}",
        berth_tests::registry::REGISTRY,
        std::process::id()
    );
    berth_tests::registry::push(&served, "mirrored");
    let image = format!("mirror.invalid/berth-test/mirrored:{}", std::process::id());

    let config = format!(
        "[registries.\"mirror.invalid\"]\nmirror = \"{}\"\n",
        berth_tests::registry::REGISTRY
    );
    let env = BerthEnv::new(&config);
    let pulled = env.berth(&["image", "pull", &image, "--json"]).ok().json();
    assert_eq!(pulled["names"][0], image.as_str(), "{pulled}");
    let ran = env.berth(&["run", "--rm", &image]).ok();
    assert!(ran.stdout.ends_with("mirrored\n"), "{ran:?}");
    let absent = env.berth(&["image", "pull", "mirror.invalid/berth-test/absent:1"]);
    assert_eq!(
        absent.code, 66,
        "the mirror answers for the registry: {absent:?}"
    );
}

/// A credential helper speaking docker's protocol (`docker-credential-berthtest`), keeping one
/// login in `store.json` beside it and logging each verb to `calls`.
const CREDENTIAL_HELPER: &str = r#"#!/bin/sh
here=$(dirname "$0")
echo "$1" >> "$here/calls"
case "$1" in
store) cat > "$here/store.json" ;;
get) read -r server
     if [ -f "$here/store.json" ] && grep -q "\"ServerURL\":\"$server\"" "$here/store.json"; then
         cat "$here/store.json"
     else
         echo "credentials not found in native keychain"; exit 1
     fi ;;
erase) [ -f "$here/store.json" ] || { echo "credentials not found in native keychain"; exit 1; }
       rm "$here/store.json" ;;
*) exit 2 ;;
esac
"#;

/// What a registry's own login leaves in `config.json` instead of a password (docker's
/// `identitytoken`): traded for a bearer token by OAuth2's refresh grant at each pull.
#[test]
fn an_identity_token_from_a_registry_login_is_traded_for_pull_tokens() {
    use berth_tests::registry::{Guard, OwnRegistry, REFRESH_TOKEN, push_with};
    let registry = OwnRegistry::guarded(Guard {
        user: Some(("carol", "pw")),
        bearer: true,
        ..Guard::default()
    });
    let server = registry.address.as_str();
    let image = format!("{server}/team/oauth:1");
    push_with(
        &image,
        "oauth",
        &["--dest-tls-verify=false", "--dest-creds", "carol:pw"],
    );
    let env = BerthEnv::new("");
    let config = env.docker_config_dir().join("config.json");
    fs::create_dir_all(env.docker_config_dir()).unwrap();
    let write = |token: &str| {
        let auths = serde_json::json!({ "auths": { server: { "identitytoken": token } } });
        fs::write(&config, auths.to_string()).unwrap();
    };
    write("revoked");
    let refused = env.berth(&["image", "pull", &image]);
    assert_eq!(refused.code, 77, "{refused:?}");
    assert!(refused.stderr.contains("identity token"), "{refused:?}");
    write(REFRESH_TOKEN);
    env.berth(&["image", "pull", "-q", &image]).ok();
    let ran = env.berth(&["run", "--rm", &image]).ok();
    assert!(ran.stdout.ends_with("oauth\n"), "{ran:?}");
    let tokens = registry.tokens.as_ref().unwrap();
    let asked = tokens.requests.lock().unwrap().join("\n");
    assert!(asked.contains("grant_type=refresh_token"), "{asked}");
    assert!(asked.contains("client_id=berth"), "{asked}");
}

#[test]
fn a_tls_registry_is_trusted_by_its_own_ca_and_logged_in_through_a_credential_helper() {
    use berth_tests::registry::{Guard, OwnRegistry, push_with};
    let registry = OwnRegistry::guarded(Guard {
        user: Some(("bob", "hunter2")),
        tls: true,
        ..Guard::default()
    });
    let server = registry.address.as_str();
    let image = format!("{server}/team/tls:1");
    let cert_dir = registry.cert_dir();
    let cert_dir = cert_dir.to_str().unwrap();
    push_with(
        &image,
        "tls",
        &["--dest-cert-dir", cert_dir, "--dest-creds", "bob:hunter2"],
    );

    // TLS verified against the platform's roots: this CA is not among them.
    let untrusted = BerthEnv::new(&format!("[registries.\"{server}\"]\ninsecure = false\n"));
    let refused = untrusted.berth(&["image", "pull", &image]);
    assert_eq!(refused.code, 69, "{refused:?}");
    assert!(refused.stderr.contains(server), "{refused:?}");
    // A loopback registry spoken to in plain HTTP by default: the error says what to set.
    let plain = BerthEnv::new("").berth(&["image", "pull", &image]);
    assert_eq!(plain.code, 69, "{plain:?}");
    assert!(plain.stderr.contains("insecure = false"), "{plain:?}");

    let env = BerthEnv::new(&format!(
        "[registries.\"{server}\"]\nca = \"{}\"\n",
        registry.ca().display()
    ));
    let bin = env.dir.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-berthtest");
    fs::write(&helper, CREDENTIAL_HELPER).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    let config = env.docker_config_dir().join("config.json");
    fs::create_dir_all(env.docker_config_dir()).unwrap();
    fs::write(&config, r#"{"credsStore": "berthtest"}"#).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let berth = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut child = env
            .command(args)
            .env("PATH", &path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        berth_tests::env::Run::from(child.wait_with_output().unwrap())
    };

    let anonymous = berth(&["image", "pull", &image], "");
    assert_eq!(anonymous.code, 77, "{anonymous:?}");
    let login = berth(
        &["login", "-u", "bob", "--password-stdin", server, "--json"],
        "hunter2\n",
    )
    .ok()
    .json();
    assert_eq!(login["stored_in"]["kind"], "helper", "{login}");
    let kept = fs::read_to_string(bin.join("store.json")).unwrap();
    assert!(
        kept.contains("hunter2"),
        "the helper keeps the secret: {kept}"
    );
    let file = fs::read_to_string(&config).unwrap();
    assert!(!file.contains("hunter2"), "the file does not: {file}");
    assert!(
        file.contains("credsStore"),
        "what was there is kept: {file}"
    );

    berth(&["image", "pull", "-q", &image], "").ok();
    let ran = env.berth(&["run", "--rm", &image]).ok();
    assert!(ran.stdout.ends_with("tls\n"), "{ran:?}");
    berth(&["logout", server], "").ok();
    assert!(!bin.join("store.json").exists(), "erased by the helper");
    let calls = fs::read_to_string(bin.join("calls")).unwrap();
    assert_eq!(
        calls.lines().collect::<Vec<_>>(),
        ["get", "store", "get", "erase"],
        "{calls}"
    );
}

#[test]
fn snapshots_chain_on_the_image_layers() {
    let env = BerthEnv::new("").with_busybox();
    // The shared flow runs in contract.rs; here, what is native's own: the image's own
    // layers are snapshots too, and go only with the image.
    let base = env.berth(&["snapshot", "lineage", "--json", "x"]);
    assert_eq!(base.code, 66, "{base:?}");
    let listed = env.berth(&["snapshot", "ls", "--json"]).ok().json();
    let layer = listed[0]["name"].as_str().unwrap().to_string();
    assert!(layer.starts_with("sha256:"), "{listed}");
    let refused = env.berth(&["snapshot", "rm", &layer]);
    assert_eq!(refused.code, 73, "{refused:?}");
    assert!(refused.stderr.contains("image rm"), "{refused:?}");
    let bad = env.berth(&["snapshot", "prepare", "../escape", &layer]);
    assert_eq!(bad.code, 64, "{bad:?}");
}

#[test]
fn versions_of_a_native_container_survive_its_image() {
    let env = BerthEnv::new("").with_busybox();
    // The shared commit/rollback flow runs in contract.rs; here, what is native's own:
    // a version keeps the image layers under it after the image is gone.
    env.berth(&["run", "-d", "--name", "kept", IMAGE, "sleep", "600"])
        .ok();
    env.berth(&["exec", "kept", "sh", "-c", "echo mine > /mine"])
        .ok();
    let version = env
        .berth(&["commit", "kept"])
        .ok()
        .stdout
        .trim()
        .to_string();
    env.berth(&["exec", "kept", "sh", "-c", "echo later > /later"])
        .ok();
    let id = env.berth(&["inspect", "kept"]).ok().json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // What it wrote after the version stays too, as snapshot <id> on the version.
    env.berth(&["rm", "-f", "--keep-snapshot", "kept"]).ok();
    let lineage = env.berth(&["snapshot", "lineage", &id]).ok().stdout;
    assert!(
        lineage.starts_with(&format!("{id}\n{version}\nsha256:")),
        "{lineage}"
    );
    env.berth(&["snapshot", "rm", &id]).ok();
    env.berth(&["image", "rm", IMAGE]).ok();
    env.berth(&["snapshot", "prepare", "after", &version]).ok();
    let dir = env
        .berth(&["snapshot", "mount", "after"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let mine = fs::read_to_string(Path::new(&dir).join("mine"));
    let busybox = Path::new(&dir).join("bin/busybox").exists();
    env.berth(&["snapshot", "unmount", &dir]).ok();
    assert_eq!(mine.unwrap(), "mine\n");
    assert!(busybox, "the image's layer went with the image");
    env.berth(&["snapshot", "rm", "after", &version]).ok();
}

#[test]
fn logs_are_tailed_windowed_and_timestamped() {
    let env = BerthEnv::new("").with_busybox();
    berth_tests::logs::log_filters_flow(&env, "native", IMAGE);
}
