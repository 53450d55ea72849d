//! The crash-injection harness: `berth` SIGKILLed between any two steps of every multi-step
//! operation, then the host is checked. `BERTH_CRASH_AT=<point>` makes berth (or the
//! supervisor it spawned) kill itself at a named fault point, so every instant is reached
//! deterministically; random-delay kills are a second net for the instants no point names.
//!
//! After each kill: `ps -a` works and every record parses; `berth gc` brings the host to a
//! state where each object is fully there or fully gone, and a second gc finds nothing left;
//! the name can be used again; no mount, cgroup, process, native container directory or temp
//! file of the killed operation's container remains; and a commit never loses what the
//! container wrote before it began. The counts are printed at the end of each test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use berth_tests::env::{BerthEnv, Run, ended, killed_at};

const IMAGE: &str = "busybox:local";

/// A fresh installation with busybox, its own cgroup parent (so what is checked is this
/// test's alone) and a volumes root of its own.
fn env() -> BerthEnv {
    bare_env().with_busybox()
}

/// [`env`] without an image.
fn bare_env() -> BerthEnv {
    let parent = format!("berth-crash-{}-{}", std::process::id(), next());
    BerthEnv::new(&format!("cgroup-parent = \"{parent}\"\n"))
}

fn next() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

/// What must hold after any crash, once gc has run. `ours` are the container names the
/// killed operation was about. Returns the number of leftovers found (asserted zero).
#[track_caller]
fn assert_whole(env: &BerthEnv, ours: &[&str]) -> usize {
    let ps = env.berth(&["ps", "-a", "--json"]).ok().json();
    for row in ps.as_array().unwrap() {
        assert_ne!(row["state"], "dead", "a record that does not stand: {row}");
    }
    let gc = env.berth(&["gc", "--json"]).ok().json();
    assert_eq!(gc["failed"], serde_json::json!([]), "{gc}");
    let again = env.berth(&["gc", "--dry-run", "--json"]).ok().json();
    let mut leftovers = again["removed"].as_array().unwrap().len();
    assert_eq!(
        again["removed"],
        serde_json::json!([]),
        "gc left work undone: {again}"
    );

    let listed = env.berth(&["ps", "-a", "--json"]).ok().json();
    let ids: BTreeSet<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    // Every native container directory belongs to a listed container.
    let dirs = native_container_dirs(env);
    let strays: Vec<_> = dirs.iter().filter(|d| !ids.contains(*d)).collect();
    leftovers += strays.len();
    assert!(
        strays.is_empty(),
        "native directories with no container: {strays:?}"
    );
    // No mount under the installation but the rootfs of a running container and the network
    // namespace of a listed one (kept, with its address, until it is stopped or removed).
    let netns = env.run_dir().join("netns");
    let attached = |m: &PathBuf| {
        m.starts_with(&netns)
            && (ids.iter().any(|id| m.ends_with(id))
                || (*m == netns && ids.iter().any(|id| netns.join(id).exists())))
    };
    let running: BTreeSet<String> = listed
        .as_array()
        .unwrap()
        .iter()
        // A supervisor whose `start` was killed carries on: `starting` is mid-operation.
        .filter(|r| r["state"] == "running" || r["state"] == "starting")
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let mounts: Vec<PathBuf> = mount_points()
        .into_iter()
        .filter(|m| m.starts_with(env.dir.path()) && !attached(m))
        .filter(|m| {
            !running
                .iter()
                .any(|id| m.to_string_lossy().contains(id.as_str()))
        })
        .collect();
    leftovers += mounts.len();
    assert!(mounts.is_empty(), "stray mounts: {mounts:?}");
    // No cgroup of a container that is not there.
    let cgroups: Vec<PathBuf> = cgroup_dirs(env)
        .into_iter()
        .filter(|d| {
            let id = d.file_name().unwrap().to_string_lossy().into_owned();
            !ids.contains(&id)
        })
        .collect();
    leftovers += cgroups.len();
    assert!(cgroups.is_empty(), "stray cgroups: {cgroups:?}");
    // The names are free again (or taken by a container that is whole).
    for name in ours {
        let exists = listed
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == *name);
        if !exists {
            env.berth(&["create", "--name", name, IMAGE, "true"]).ok();
            env.berth(&["rm", "-f", name]).ok();
        }
    }
    leftovers
}

fn native_container_dirs(env: &BerthEnv) -> Vec<String> {
    std::fs::read_dir(env.state_dir().join("native-containers"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn mount_points() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .collect()
}

/// Container cgroups under this installation's cgroup parent, in any hierarchy.
fn cgroup_dirs(env: &BerthEnv) -> Vec<PathBuf> {
    let config = std::fs::read_to_string(&env.config).unwrap();
    let parent = config
        .lines()
        .find_map(|l| l.strip_prefix("cgroup-parent = \""))
        .map(|p| p.trim_end_matches('"').to_string())
        .unwrap();
    let mut dirs = Vec::new();
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let base = hierarchy.path().join(&parent);
        for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                dirs.push(entry.path());
            }
        }
    }
    dirs
}

/// Prints the harness's figures for one test, straight to stderr: libtest captures only the
/// print macros, and these lines belong in the suite's output (`.ci/run`'s log) even when the
/// test passes.
fn report(test: &str, kills: usize, points: usize, leftovers: usize, lost: usize) {
    use std::io::Write;
    let line = format!(
        "crash harness {test}: {kills} kills, {points} instants covered, {leftovers} leftovers, \
         {lost} lost commits\n"
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    assert_eq!((leftovers, lost), (0, 0));
}

#[test]
fn a_create_killed_at_any_step_is_undone() {
    let points = [
        "create.claimed",
        "create.intended",
        "native.create.bundled",
        "create.backend-created",
    ];
    let mut leftovers = 0;
    for point in points {
        let env = env();
        killed_at(
            &env,
            point,
            &["run", "-d", "--name", "web", IMAGE, "sleep", "300"],
        );
        leftovers += assert_whole(&env, &["web"]);
        // Gone, not half there: a new one of the same name runs.
        env.berth(&["run", "--rm", "--name", "web", IMAGE, "true"])
            .ok();
    }
    report("create", points.len(), points.len(), leftovers, 0);
}

#[test]
fn a_removal_killed_at_any_step_is_finished() {
    let points = [
        "remove.marked",
        "native.remove.released",
        "remove.backend-removed",
    ];
    let mut leftovers = 0;
    for point in points {
        let env = env();
        env.berth(&["run", "-d", "--name", "web", IMAGE, "sleep", "300"])
            .ok();
        killed_at(&env, point, &["rm", "-f", "web"]);
        // The next rm finishes it; nothing answers "not found" for a record still there.
        env.berth(&["rm", "-f", "web"]).ok();
        leftovers += assert_whole(&env, &["web"]);
        let gone = env.berth(&["ps", "-a", "--json"]).ok().json();
        assert_eq!(gone, serde_json::json!([]), "{point}: {gone}");
    }
    report("rm", points.len(), points.len(), leftovers, 0);
}

/// A running container that wrote `/state`, committed by a `berth` killed at `point`.
#[test]
fn a_commit_or_rollback_killed_at_any_step_loses_nothing() {
    let mut lost = 0;
    let mut leftovers = 0;
    let commit_points = [
        "native.rebase.intended",
        "native.snapshot.staged",
        "native.rebase.committed",
    ];
    for point in commit_points {
        let env = env();
        env.berth(&["run", "-d", "--name", "versioned", IMAGE, "sleep", "300"])
            .ok();
        env.berth(&["exec", "versioned", "sh", "-c", "echo before > /state"])
            .ok();
        killed_at(&env, point, &["commit", "versioned", "v1"]);
        leftovers += assert_whole(&env, &["versioned"]);
        env.berth(&["start", "versioned"]).ok();
        let state = env.berth(&["exec", "versioned", "cat", "/state"]);
        if state.stdout != "before\n" {
            eprintln!("{point}: /state is {state:?}");
            lost += 1;
        }
        // The commit either happened whole (a version to go back to) or not at all.
        let versions = env.berth(&["snapshot", "ls", "--json"]).ok().json();
        let has_v1 = versions
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "v1");
        if has_v1 {
            env.berth(&["exec", "versioned", "sh", "-c", "echo after > /state"])
                .ok();
            env.berth(&["rollback", "versioned", "v1"]).ok();
            let back = env.berth(&["exec", "versioned", "cat", "/state"]).ok();
            assert_eq!(back.stdout, "before\n", "{point}");
        }
    }
    // A rollback killed after its intent: finished by the next operation.
    let env = env();
    env.berth(&["run", "-d", "--name", "versioned", IMAGE, "sleep", "300"])
        .ok();
    env.berth(&["exec", "versioned", "sh", "-c", "echo one > /state"])
        .ok();
    env.berth(&["commit", "versioned", "v1"]).ok();
    env.berth(&["exec", "versioned", "sh", "-c", "echo two > /state"])
        .ok();
    killed_at(
        &env,
        "native.rebase.intended",
        &["rollback", "versioned", "v1"],
    );
    leftovers += assert_whole(&env, &["versioned"]);
    env.berth(&["start", "versioned"]).ok();
    let state = env.berth(&["exec", "versioned", "cat", "/state"]).ok();
    assert_eq!(state.stdout, "one\n");
    let kills = commit_points.len() + 1;
    report("commit/rollback", kills, kills, leftovers, lost);
}

#[test]
fn an_image_import_or_removal_killed_at_any_step_leaves_it_whole_or_gone() {
    let mut leftovers = 0;
    let rootfs = berth_tests::env::busybox_rootfs().display().to_string();
    for point in ["native.import.extracted", "native.import.layers-in"] {
        let env = bare_env();
        killed_at(
            &env,
            point,
            &["image", "import", "--rootfs", &rootfs, "other:1"],
        );
        leftovers += assert_whole(&env, &[]);
        let images = env.berth(&["image", "ls", "--json"]).ok().json();
        assert_eq!(images, serde_json::json!([]), "{point}: {images}");
        assert_eq!(layer_dirs(&env), 0, "{point}: layers of no image");
        env.berth(&["image", "import", "--rootfs", &rootfs, "other:1"])
            .ok();
    }
    let env = env();
    killed_at(&env, "native.image-rm.unrecorded", &["image", "rm", IMAGE]);
    leftovers += assert_whole(&env, &[]);
    assert_eq!(
        env.berth(&["image", "ls", "--json"]).ok().json(),
        serde_json::json!([])
    );
    assert_eq!(layer_dirs(&env), 0, "the removed image's layers");
    report("image import/rm", 3, 3, leftovers, 0);
}

fn layer_dirs(env: &BerthEnv) -> usize {
    std::fs::read_dir(env.state_dir().join("native/layers"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn a_volume_create_or_package_install_killed_is_finished_or_undone() {
    let env = env();
    killed_at(&env, "quota.volume.made", &["volume", "create", "data"]);
    let leftovers = assert_whole(&env, &[]);
    // The half-made volume went with gc; the name is free.
    assert_eq!(
        env.berth(&["volume", "ls", "--json"]).ok().json(),
        serde_json::json!([])
    );
    env.berth(&["volume", "create", "data"]).ok();
    env.berth(&["volume", "rm", "data"]).ok();

    let src = berth_tests::env::package_source(env.dir.path());
    let package = env.dir.path().join("hello.ipk").display().to_string();
    env.berth(&[
        "pkg",
        "build",
        &src,
        "--name",
        "hello",
        "--version",
        "1.0.0",
        "-o",
        &package,
    ])
    .ok();
    killed_at(
        &env,
        "packages.install.unpacked",
        &["pkg", "install", &package],
    );
    let leftovers = leftovers + assert_whole(&env, &[]);
    assert_eq!(
        env.berth(&["pkg", "ls", "--json"]).ok().json(),
        serde_json::json!([])
    );
    env.berth(&["pkg", "install", &package]).ok();
    report("volume create/pkg install", 2, 2, leftovers, 0);
}

/// `berth run --rm` killed while its container runs: the container is removed once it has
/// exited, by gc.
#[test]
fn a_killed_run_rm_leaves_a_container_gc_removes_once_it_exits() {
    let env = env();
    let mut run = env
        .command(&["run", "--rm", "--name", "brief", IMAGE, "sleep", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(|| state_of(&env, "brief").as_deref() == Some("running"));
    run.kill().unwrap();
    run.wait().unwrap();
    // Still running: gc leaves it alone.
    env.berth(&["gc"]).ok();
    assert!(state_of(&env, "brief").is_some());
    wait_until(|| state_of(&env, "brief").as_deref() == Some("stopped"));
    let leftovers = assert_whole(&env, &["brief"]);
    assert_eq!(state_of(&env, "brief"), None, "removed once it exited");
    report("run --rm", 1, 1, leftovers, 0);
}

/// A `cp` killed with a stopped container's rootfs mounted for it: the mount is the one the
/// next start uses, the copy can be run again, and remove takes it down.
#[test]
fn a_copy_killed_with_a_stopped_containers_files_mounted_loses_nothing() {
    let env = env();
    env.berth(&["create", "--name", "files", IMAGE, "cat", "/copied"])
        .ok();
    let source = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(source.path(), "kept\n").unwrap();
    let source = source.path().display().to_string();
    killed_at(
        &env,
        "native.copy.mounted",
        &["cp", &source, "files:/copied"],
    );
    env.berth(&["cp", &source, "files:/copied"]).ok();
    assert_eq!(env.berth(&["start", "-a", "files"]).ok().stdout, "kept\n");
    let leftovers = assert_whole(&env, &[]);
    report("cp", 1, 1, leftovers, 0);
}

/// The supervisor killed: `ps` says dead, `start` is refused while the container's process
/// lives, `stop` ends that very process, and nothing of it remains after `rm`.
/// `stop` and `kill` of a container whose supervisor was killed reach its real process.
#[test]
fn a_container_whose_supervisor_was_killed_is_stopped_through_its_cgroup() {
    let env = env();
    for verb in [&["stop", "-t", "1"][..], &["kill"]] {
        let id = env
            .berth(&["run", "-d", "--name", "orphaned", IMAGE, "sleep", "300"])
            .ok()
            .stdout
            .trim()
            .to_string();
        let pid = env.berth(&["inspect", &id]).ok().json()[0]["pid"]
            .as_u64()
            .unwrap();
        let killed = std::process::Command::new("pkill")
            .args(["-9", "-f", &format!("__native-supervise .*{id}")])
            .status()
            .unwrap();
        assert!(killed.success());
        wait_until(|| state_of(&env, "orphaned").as_deref() == Some("dead"));
        assert!(
            Path::new(&format!("/proc/{pid}")).exists(),
            "the process outlives it"
        );
        let start = env.berth(&["start", "orphaned"]);
        assert_eq!(start.code, 73, "{start:?}");
        assert!(start.stderr.contains("stop it first"), "{start:?}");

        env.berth(&[verb, &["orphaned"]].concat()).ok();
        wait_until(|| ended(pid));
        assert_eq!(
            state_of(&env, "orphaned").as_deref(),
            Some("stopped"),
            "{verb:?}"
        );
        // Stopped now, it can run again.
        env.berth(&["start", "orphaned"]).ok();
        env.berth(&["rm", "-f", "orphaned"]).ok();
    }
    let leftovers = assert_whole(&env, &["orphaned"]);
    report("supervisor", 2, 2, leftovers, 0);
}

/// A stop killed after the container stopped but before its networks were detached: gc
/// gives the address back (and a start would detach first).
#[test]
fn a_stop_killed_before_detaching_leaves_an_address_gc_gives_back() {
    let env = env();
    let id = env
        .berth(&["run", "-d", "--name", "web", IMAGE, "sleep", "300"])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(
        !leases_of(&env, &id).is_empty(),
        "the default network gave it an address"
    );
    killed_at(&env, "stop.backend-stopped", &["stop", "-t", "1", "web"]);
    assert_eq!(state_of(&env, "web").as_deref(), Some("stopped"));
    let netns = env.run_dir().join("netns").join(&id);
    assert!(netns.exists(), "the kill came before the detach");
    let leftovers = assert_whole(&env, &["web"]);
    assert_eq!(leases_of(&env, &id), Vec::<PathBuf>::new());
    assert!(!netns.exists(), "{}", netns.display());
    // Whole: it starts again, with an address.
    env.berth(&["start", "web"]).ok();
    assert!(!leases_of(&env, &id).is_empty());
    env.berth(&["rm", "-f", "web"]).ok();
    report("stop", 1, 1, leftovers, 0);
}

/// The IPAM lease files that name container `id`.
fn leases_of(env: &BerthEnv, id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![env.state_dir().join("networks").join("ipam")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if std::fs::read_to_string(&path).is_ok_and(|t| t.contains(id)) {
                found.push(path);
            }
        }
    }
    found
}

/// Kills at random instants of a create and a removal: whatever instant it was, the host is
/// whole after gc.
#[test]
fn random_kills_of_run_and_rm_leave_the_host_whole() {
    let env = env();
    let mut kills = 0;
    let mut leftovers = 0;
    for round in 0..12u64 {
        let delay = Duration::from_millis(3 + (round * 7919) % 40);
        let run = env
            .command(&["run", "-d", "--name", "chaos", IMAGE, "sleep", "300"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        kills += kill_after(run, delay);
        leftovers += assert_whole(&env, &["chaos"]);
        if state_of(&env, "chaos").is_none() {
            env.berth(&["run", "-d", "--name", "chaos", IMAGE, "sleep", "300"])
                .ok();
        }
        let rm = env
            .command(&["rm", "-f", "chaos"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        kills += kill_after(rm, delay);
        let _ = env.berth(&["rm", "-f", "chaos"]);
        leftovers += assert_whole(&env, &["chaos"]);
    }
    report("random", kills, 24, leftovers, 0);
}

/// SIGKILLs `child` after `delay` unless it ended first; 1 if it was killed.
fn kill_after(mut child: Child, delay: Duration) -> usize {
    std::thread::sleep(delay);
    let killed = child.try_wait().unwrap().is_none() && child.kill().is_ok();
    child.wait().unwrap();
    usize::from(killed)
}

fn state_of(env: &BerthEnv, name: &str) -> Option<String> {
    let ps: Run = env.berth(&["ps", "-a", "--json"]);
    ps.json()
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .map(|r| r["state"].as_str().unwrap().to_string())
}

#[track_caller]
fn wait_until(condition: impl Fn() -> bool) {
    for _ in 0..300 {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the condition did not come true in 15 s");
}

/// A full disk is named as such (74), not reported as a corrupt archive, and leaves nothing
/// half-imported: on a 1 MiB tmpfs as state-dir, busybox's image does not fit.
#[test]
fn a_full_disk_is_named_and_leaves_nothing_half_done() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let _tmpfs = berth_tests::env::Tmpfs::mount(&state, "size=1m");
    let config = berth_tests::env::native_config(
        &dir.path().join("berth.toml"),
        &state,
        &dir.path().join("run"),
    );
    let berth = |args: &[&str]| {
        let mut all = vec!["--config", config.as_str()];
        all.extend(args);
        berth_tests::env::run_berth(&all)
    };
    let rootfs = berth_tests::env::busybox_rootfs().display().to_string();
    let full = berth(&["image", "import", "--rootfs", &rootfs, "busybox:local"]);
    assert_eq!(full.code, 74, "{full:?}");
    assert!(full.stderr.contains("No space left"), "{full:?}");
    let images = berth(&["image", "ls", "--json"]);
    assert_eq!(images.code, 0, "{images:?}");
    assert_eq!(images.json(), serde_json::json!([]));
    let gc = berth(&["gc", "--dry-run", "--json"]);
    assert_eq!(gc.json()["removed"], serde_json::json!([]), "{gc:?}");
    assert_eq!(layer_count(&state), 0);
}

/// A store that turns read-only under berth is named as such (74) and changes nothing.
#[test]
fn a_read_only_store_is_named_and_changes_nothing() {
    let env = env();
    let before = env.berth(&["image", "ls", "--json"]).ok().json();
    let rootfs = berth_tests::env::busybox_rootfs().display().to_string();
    {
        let _read_only = berth_tests::env::ReadOnly::bind(&env.state_dir().join("native"));
        let refused = env.berth(&["image", "import", "--rootfs", &rootfs, "other:1"]);
        assert_eq!(refused.code, 74, "{refused:?}");
        assert!(
            refused.stderr.contains("Read-only file system"),
            "{refused:?}"
        );
        assert_eq!(env.berth(&["image", "ls", "--json"]).ok().json(), before);
    }
    let leftovers = assert_whole(&env, &[]);
    env.berth(&["image", "import", "--rootfs", &rootfs, "other:1"])
        .ok();
    report("read-only store", 0, 1, leftovers, 0);
}

fn layer_count(state: &Path) -> usize {
    std::fs::read_dir(state.join("native/layers"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A create killed after its backend made the container does not pin the image: `image rm`
/// collects the leftover (as gc would) instead of naming a container `rm` cannot find.
#[test]
fn a_dead_creates_container_does_not_pin_its_image() {
    let env = env();
    killed_at(
        &env,
        "create.backend-created",
        &["create", "--name", "web", IMAGE, "true"],
    );
    assert_eq!(
        env.berth(&["ps", "-a", "--json"]).ok().json(),
        serde_json::json!([])
    );
    env.berth(&["image", "rm", IMAGE]).ok();
    assert_eq!(native_container_dirs(&env), Vec::<String>::new());
}

/// The supervisor killed after it started the container but before it recorded so: `run -d`
/// fails, and the start is undone (gc ends the process nobody watches); the container can be
/// started again.
#[test]
fn a_start_whose_supervisor_died_before_recording_it_is_undone() {
    let env = env();
    env.berth(&["create", "--name", "web", IMAGE, "sleep", "300"])
        .ok();
    let start = env
        .command(&["start", "web"])
        .env("BERTH_CRASH_AT", "native.supervisor.started")
        .output()
        .unwrap();
    assert!(!start.status.success(), "{start:?}");
    // Refused while the unwatched process runs, rather than killed quietly.
    let again = env.berth(&["start", "web"]);
    assert_eq!(again.code, 73, "{again:?}");
    let leftovers = assert_whole(&env, &["web"]);
    env.berth(&["start", "web"]).ok();
    assert_eq!(state_of(&env, "web").as_deref(), Some("running"));
    report("start", 1, 1, leftovers, 0);
}

/// Exited containers stay, as docker keeps them, unless `gc --exited` is asked, and then only
/// those that exited longer ago than the grace period. Mounts a killed process left under a
/// container's directory go with the container, children first.
#[test]
fn gc_removes_exited_containers_only_when_asked_and_past_their_grace() {
    let env = env();
    env.berth(&["run", "--name", "done", IMAGE, "true"]).ok();
    env.berth(&["gc"]).ok();
    assert_eq!(state_of(&env, "done").as_deref(), Some("stopped"));
    env.berth(&["gc", "--exited", "--grace", "1h"]).ok();
    assert_eq!(state_of(&env, "done").as_deref(), Some("stopped"));
    let dry = env
        .berth(&["gc", "--exited", "--dry-run", "--json"])
        .ok()
        .json();
    assert_eq!(dry["removed"].as_array().unwrap().len(), 1, "{dry}");
    assert_eq!(state_of(&env, "done").as_deref(), Some("stopped"));

    let id = env.berth(&["inspect", "done"]).ok().json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let stray = env
        .state_dir()
        .join("native-containers")
        .join(&id)
        .join("stray");
    let _outer = berth_tests::env::Tmpfs::mount(&stray, "size=1m");
    let _inner = berth_tests::env::Tmpfs::mount(&stray.join("inner"), "size=1m");
    env.berth(&["gc", "--exited", "--grace", "0s"]).ok();
    assert_eq!(state_of(&env, "done"), None);
    assert!(
        !mount_points().iter().any(|m| m.starts_with(&stray)),
        "the stray mounts went with the container"
    );
    let leftovers = assert_whole(&env, &["done"]);
    report("gc --exited", 0, 0, leftovers, 0);
}

/// `inspect` of `name`.
fn inspect(env: &BerthEnv, name: &str) -> serde_json::Value {
    env.berth(&["inspect", name]).ok().json()[0].clone()
}

/// Whether a restart watcher of container `id` runs.
fn watched(id: &str) -> bool {
    std::process::Command::new("pgrep")
        .args(["-f", &format!("__restart-watch {id}")])
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// A restart watcher killed after it counted a restart and before it started the container:
/// the container is left stopped and unwatched, and gc starts the watcher again, which
/// restarts it. The lost restart stays counted, so a crash never lets `on-failure:N` exceed N.
#[test]
fn a_restart_killed_before_it_starts_the_container_is_finished_by_gc() {
    let env = env();
    let ran = env
        .command(&[
            "run",
            "-d",
            "--name",
            "flaky",
            "--restart",
            "on-failure:2",
            IMAGE,
            "sh",
            "-c",
            "echo ran; exit 1",
        ])
        .env("BERTH_CRASH_AT", "restart.counted")
        .output()
        .unwrap();
    let id = Run::from(ran).ok().stdout.trim().to_string();
    wait_until(|| !watched(&id) && inspect(&env, "flaky")["restart_count"] == 1);
    assert_eq!(inspect(&env, "flaky")["state"], "stopped");
    assert_eq!(env.berth(&["logs", "flaky"]).ok().stdout, "ran\n");

    let gc = env.berth(&["gc", "--json"]).ok().json();
    assert_eq!(
        gc["restarted"],
        serde_json::json!(["container flaky (restart policy on-failure)"]),
        "{gc}"
    );
    wait_until(|| {
        let info = inspect(&env, "flaky");
        info["restart_count"] == 2 && info["state"] == "stopped" && !watched(&id)
    });
    assert_eq!(env.berth(&["logs", "flaky"]).ok().stdout, "ran\n".repeat(2));
    env.berth(&["rm", "flaky"]).ok();
    let leftovers = assert_whole(&env, &["flaky"]);
    report("restart watcher", 1, 1, leftovers, 0);
}

/// After a reboot (simulated: watcher, supervisor and process all SIGKILLed), `gc --restart`
/// starts what docker starts when its daemon does: `always` even if a user stopped it,
/// `unless-stopped` only if no user did; a plain gc restarts only what crashed.
#[test]
fn gc_restart_at_boot_starts_what_each_policy_says() {
    let env = env();
    let run = |name: &str, policy: &str| {
        env.berth(&[
            "run",
            "-d",
            "--name",
            name,
            "--restart",
            policy,
            IMAGE,
            "sleep",
            "300",
        ])
        .ok()
        .stdout
        .trim()
        .to_string()
    };
    run("kept", "always");
    run("left", "unless-stopped");
    let crashed = run("crashed", "unless-stopped");
    env.berth(&["stop", "-t", "0", "kept", "left"]).ok();
    let pid = inspect(&env, "crashed")["pid"].as_u64().unwrap();
    for pattern in [
        format!("__restart-watch {crashed}"),
        format!("__native-supervise .*{crashed}"),
    ] {
        std::process::Command::new("pkill")
            .args(["-9", "-f", &pattern])
            .status()
            .unwrap();
    }
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    wait_until(|| ended(pid) && state_of(&env, "crashed").as_deref() == Some("dead"));

    let dry = env
        .berth(&["gc", "--restart", "--dry-run", "--json"])
        .ok()
        .json();
    let mut would: Vec<String> = dry["restarted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    would.sort();
    assert_eq!(
        would,
        [
            "container crashed (restart policy unless-stopped)",
            "container kept (restart policy always)"
        ],
        "{dry}"
    );
    env.berth(&["gc", "--restart"]).ok();
    for name in ["kept", "crashed"] {
        wait_until(|| state_of(&env, name).as_deref() == Some("running"));
    }
    assert_eq!(state_of(&env, "left").as_deref(), Some("stopped"));
    // A plain gc starts nothing a user stopped.
    env.berth(&["stop", "-t", "0", "kept"]).ok();
    let plain = env.berth(&["gc", "--json"]).ok().json();
    assert_eq!(plain["restarted"], serde_json::json!([]), "{plain}");
    assert_eq!(state_of(&env, "kept").as_deref(), Some("stopped"));
    env.berth(&["rm", "-f", "kept", "left", "crashed"]).ok();
    let leftovers = assert_whole(&env, &["kept", "left", "crashed"]);
    report("boot restarts", 1, 1, leftovers, 0);
}
