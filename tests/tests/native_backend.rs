//! The native backend through its library API: real containers on this machine, supervised by
//! the built `berth` binary, with a private state and run dir per test.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_backend_native::NativeBackend;
use berth_core::config::NativeBackendConfig;
use berth_core::{
    CapturedOutput as Captured, ContainerBackend, ContainerSpec, ContainerState, ErrorKind, ExecIo,
    ExecSpec, ExecStreams, Limits, ListFilter, LogOptions, LogSink, LogStream, Mount,
    RemoveOptions, StopOptions, Store,
};
use berth_tests::archives::{
    docker_archive, file_header, image_config, layer, oci_layout, sha256_hex,
};
use berth_tests::bin::berth_exe;
use berth_tests::env::busybox_rootfs;

const IMAGE: &str = "busybox:test";

struct Env {
    dir: tempfile::TempDir,
    store: Store,
    backend: NativeBackend,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("state"), dir.path().join("run")).unwrap();
        let backend = NativeBackend::new(
            "native",
            &NativeBackendConfig::default(),
            store.clone(),
            berth_exe(),
        )
        .unwrap();
        Env {
            dir,
            store,
            backend,
        }
    }

    fn with_busybox() -> Env {
        let env = Env::new();
        env.backend
            .images()
            .import_rootfs(busybox_rootfs(), IMAGE)
            .unwrap();
        env
    }

    fn layers_dir(&self) -> PathBuf {
        self.store.state_dir().join("native/layers")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.store.state_dir().join("native/tmp")
    }

    async fn create(&self, spec: ContainerSpec) -> String {
        let id = berth_core::new_id();
        self.backend.create(&id, &spec).await.unwrap();
        id
    }

    /// Creates, starts and waits; returns the exit code and the (stdout, stderr) logs.
    async fn run(&self, spec: ContainerSpec) -> (i32, String, String) {
        let id = self.create(spec).await;
        self.backend.start(&id).await.unwrap();
        let code = self.backend.wait(&id).await.unwrap();
        let (out, err) = self.logs(&id).await;
        self.backend
            .remove(&id, RemoveOptions::default())
            .await
            .unwrap();
        (code, out, err)
    }

    async fn logs(&self, id: &str) -> (String, String) {
        let mut sink = Collect::default();
        self.backend
            .logs(id, LogOptions::default(), &mut sink)
            .await
            .unwrap();
        (
            String::from_utf8_lossy(&sink.stdout).into_owned(),
            String::from_utf8_lossy(&sink.stderr).into_owned(),
        )
    }
}

fn entries(dir: &Path) -> Vec<String> {
    match fs::read_dir(dir) {
        Ok(e) => e
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[derive(Default)]
struct Collect {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl LogSink for Collect {
    fn write(&mut self, stream: LogStream, data: &[u8]) -> std::io::Result<()> {
        match stream {
            LogStream::Stdout => self.stdout.extend_from_slice(data),
            LogStream::Stderr => self.stderr.extend_from_slice(data),
        }
        Ok(())
    }
}

fn spec(image: &str, command: &[&str]) -> ContainerSpec {
    ContainerSpec {
        name: "t".into(),
        image: image.into(),
        command: command.iter().map(|s| s.to_string()).collect(),
        ..ContainerSpec::default()
    }
}

fn sleeper() -> ContainerSpec {
    spec(IMAGE, &["sleep", "1000"])
}

fn alive(pid: u32) -> bool {
    // A zombie counts as gone.
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

// ---- containers ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_container_runs_to_its_exit_code() {
    let env = Env::with_busybox();
    let id = env
        .create(spec(IMAGE, &["sh", "-c", "echo out; echo err >&2; exit 3"]))
        .await;
    assert_eq!(
        env.backend.inspect(&id).await.unwrap().state,
        ContainerState::Created
    );
    env.backend.start(&id).await.unwrap();
    assert_eq!(env.backend.wait(&id).await.unwrap(), 3);
    let info = env.backend.inspect(&id).await.unwrap();
    assert_eq!(
        (info.state, info.exit_code),
        (ContainerState::Stopped, Some(3))
    );
    assert!(info.started.is_some() && info.finished.is_some());
    assert_eq!(
        env.logs(&id).await,
        ("out\n".to_string(), "err\n".to_string())
    );
    env.backend
        .remove(&id, RemoveOptions::default())
        .await
        .unwrap();
    let gone = env.backend.inspect(&id).await.unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn env_mount_hostname_and_workdir_are_visible_inside() {
    let env = Env::with_busybox();
    let data = env.dir.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("file"), "from-the-host\n").unwrap();
    let mut s = spec(
        IMAGE,
        &[
            "sh",
            "-c",
            "echo $GREETING; cat /mnt/file; hostname; pwd; touch /mnt/x || echo ro",
        ],
    );
    s.env = BTreeMap::from([("GREETING".to_string(), "hello".to_string())]);
    s.mounts = vec![Mount {
        source: data.display().to_string(),
        target: "/mnt".into(),
        readonly: true,
        owner: None,
    }];
    s.hostname = Some("box1".into());
    s.working_dir = Some("/tmp".into());
    let (code, out, _) = env.run(s).await;
    assert_eq!(code, 0);
    assert_eq!(out, "hello\nfrom-the-host\nbox1\n/tmp\nro\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_command_fails_start_clearly() {
    let env = Env::with_busybox();
    let id = env.create(spec(IMAGE, &["/no/such/binary"])).await;
    let err = env.backend.start(&id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CommandNotFound, "{err}");
    assert!(err.to_string().contains("/no/such/binary"), "{err}");
    let info = env.backend.inspect(&id).await.unwrap();
    assert_eq!(info.state, ContainerState::Created);
    env.backend
        .remove(&id, RemoveOptions::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_memory_limit_kills_a_process_that_exceeds_it() {
    let env = Env::with_busybox();
    let mut s = spec(
        IMAGE,
        &["dd", "if=/dev/zero", "of=/dev/shm/x", "bs=1M", "count=64"],
    );
    s.limits = Limits {
        memory_bytes: Some(16 << 20),
        cpu_millis: Some(500),
        pids: Some(32),
    };
    let (code, _, _) = env.run(s).await;
    assert_eq!(code, 137, "SIGKILL by the OOM killer");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_detached_container_is_stopped_inspected_and_removed() {
    let env = Env::with_busybox();
    let id = env.create(sleeper()).await;
    env.backend.start(&id).await.unwrap();
    let info = env.backend.inspect(&id).await.unwrap();
    assert_eq!(info.state, ContainerState::Running);
    let pid = info.pid.unwrap();
    assert!(alive(pid));
    let listed = env.backend.list(&ListFilter::default()).await.unwrap();
    assert_eq!(listed.len(), 1);

    // A running container is not removed without force.
    let refused = env
        .backend
        .remove(&id, RemoveOptions::default())
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Conflict);

    // sleep as pid 1 ignores SIGTERM: without force the stop times out, with force it kills.
    let patient = StopOptions {
        timeout: Duration::from_millis(300),
        force: false,
        ..StopOptions::default()
    };
    let timeout = env.backend.stop(&id, &patient).await.unwrap_err();
    assert_eq!(timeout.kind(), ErrorKind::Timeout);
    let forced = StopOptions {
        timeout: Duration::from_millis(300),
        ..StopOptions::default()
    };
    env.backend.stop(&id, &forced).await.unwrap();
    let info = env.backend.inspect(&id).await.unwrap();
    assert_eq!(
        (info.state, info.exit_code),
        (ContainerState::Stopped, Some(137))
    );
    assert!(!alive(pid));
    // Stopping a stopped container succeeds.
    env.backend.stop(&id, &forced).await.unwrap();
    assert!(
        env.backend
            .list(&ListFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        env.backend
            .list(&ListFilter {
                all: true,
                ..ListFilter::default()
            })
            .await
            .unwrap()
            .len(),
        1
    );
    env.backend
        .remove(&id, RemoveOptions::default())
        .await
        .unwrap();
    assert!(
        env.backend
            .list(&ListFilter {
                all: true,
                ..ListFilter::default()
            })
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_runs_in_a_running_container_with_its_exit_code() {
    let env = Env::with_busybox();
    let id = env.create(sleeper()).await;
    env.backend.start(&id).await.unwrap();
    let exec = |command: &[&str]| ExecSpec {
        command: command.iter().map(|s| s.to_string()).collect(),
        ..ExecSpec::default()
    };
    assert_eq!(
        env.backend
            .exec(&id, &exec(&["sh", "-c", "exit 7"]), ExecIo::Inherit)
            .await
            .unwrap(),
        7
    );
    // The exec'd process sees the container's filesystem and pid namespace.
    let check = exec(&[
        "sh",
        "-c",
        "test \"$(cat /proc/1/comm)\" = sleep && test -x /bin/busybox",
    ]);
    assert_eq!(
        env.backend
            .exec(&id, &check, ExecIo::Inherit)
            .await
            .unwrap(),
        0
    );
    // On the caller's streams: each output captured apart, stdin fed when interactive.
    let (stdout, stderr) = (Captured::default(), Captured::default());
    let mut echo = exec(&["sh", "-c", "cat; echo out; echo err >&2"]);
    echo.interactive = true;
    let streams = ExecStreams {
        stdin: Box::new(&b"in\n"[..]),
        ..ExecStreams::output(stdout.clone(), stderr.clone())
    };
    let code = env.backend.exec(&id, &echo, ExecIo::Streams(streams)).await;
    assert_eq!(code.unwrap(), 0);
    assert_eq!(stdout.text(), "in\nout\n");
    assert_eq!(stderr.text(), "err\n");
    // Past its timeout the process is killed and the exec fails as timed out.
    let mut slow = exec(&["sleep", "30"]);
    slow.timeout = Some(std::time::Duration::from_secs(1));
    let began = std::time::Instant::now();
    let streams = ExecStreams::output(Captured::default(), Captured::default());
    let timed_out = env.backend.exec(&id, &slow, ExecIo::Streams(streams)).await;
    assert_eq!(timed_out.unwrap_err().kind(), ErrorKind::Timeout);
    assert!(began.elapsed() < std::time::Duration::from_secs(20));
    let left = exec(&["sh", "-c", "! ps -o args | grep -q '^sleep 30'"]);
    let gone = env.backend.exec(&id, &left, ExecIo::Inherit).await.unwrap();
    assert_eq!(gone, 0, "the timed-out process is gone");
    env.backend
        .remove(&id, RemoveOptions::forced())
        .await
        .unwrap();
    let stopped = env
        .backend
        .exec(&id, &exec(&["true"]), ExecIo::Inherit)
        .await
        .unwrap_err();
    assert_eq!(stopped.kind(), ErrorKind::NotFound);
}

/// The rootfs is mounted in the supervisor's own mount namespace, left once the container has
/// its copy: the host's table does not grow with running containers (each new namespace
/// copies it), yet the container runs on its overlay and its files are reachable. A listing's
/// `statuses` tells the same as `inspect`.
#[tokio::test(flavor = "multi_thread")]
async fn a_running_container_adds_no_mount_to_the_host() {
    let env = Env::with_busybox();
    let id = env.create(sleeper()).await;
    env.backend.start(&id).await.unwrap();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&id), "the host sees the rootfs mount");
    let check = ExecSpec {
        command: [
            "sh",
            "-c",
            "grep -q '^overlay / overlay' /proc/mounts && touch /made",
        ]
        .map(String::from)
        .to_vec(),
        ..ExecSpec::default()
    };
    assert_eq!(
        env.backend
            .exec(&id, &check, ExecIo::Inherit)
            .await
            .unwrap(),
        0
    );
    // Written through the overlay, so it is in the upper dir the host keeps.
    let upper = env
        .store
        .state_dir()
        .join("native-containers")
        .join(&id)
        .join("upper");
    assert!(upper.join("made").exists());
    let inspected = env.backend.inspect(&id).await.unwrap();
    let spec = sleeper();
    let listed = berth_core::Listed {
        id: &id,
        spec: &spec,
        created: inspected.created,
    };
    let statuses = env.backend.statuses(&[listed]).await;
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].as_ref().unwrap(), &inspected);
    env.backend
        .remove(&id, RemoveOptions::forced())
        .await
        .unwrap();
    let gone = env.backend.statuses(&[listed]).await;
    assert_eq!(gone[0].as_ref().unwrap_err().kind(), ErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_whose_supervisor_was_killed_is_dead() {
    let env = Env::with_busybox();
    let id = env.create(sleeper()).await;
    env.backend.start(&id).await.unwrap();
    let pid = env.backend.inspect(&id).await.unwrap().pid.unwrap();
    // The container's init is the supervisor's child.
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid: i32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let cmdline = fs::read_to_string(format!("/proc/{ppid}/cmdline")).unwrap();
    assert!(cmdline.contains("__native-supervise"), "{cmdline}");
    unsafe { libc::kill(ppid, libc::SIGKILL) };
    let mut info = env.backend.inspect(&id).await.unwrap();
    for _ in 0..100 {
        if info.state != ContainerState::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        info = env.backend.inspect(&id).await.unwrap();
    }
    assert_eq!(info.state, ContainerState::Dead);
    assert!(info.status_detail.unwrap().contains("supervisor"));
    assert!(env.backend.wait(&id).await.is_err());
    // Removing it also ends the orphaned container process.
    env.backend
        .remove(&id, RemoveOptions::forced())
        .await
        .unwrap();
    for _ in 0..100 {
        if !alive(pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(pid));
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_stops_and_removes_do_not_corrupt_state() {
    let env = Env::with_busybox();
    let id = env.create(sleeper()).await;
    env.backend.start(&id).await.unwrap();
    let options = StopOptions {
        timeout: Duration::from_millis(200),
        ..StopOptions::default()
    };
    let (a, b) = tokio::join!(
        env.backend.stop(&id, &options),
        env.backend.stop(&id, &options)
    );
    a.unwrap();
    b.unwrap();
    let info = env.backend.inspect(&id).await.unwrap();
    assert_eq!(
        (info.state, info.exit_code),
        (ContainerState::Stopped, Some(137))
    );
    // Start again, then race two forced removes: one wins, the other finds nothing.
    env.backend.start(&id).await.unwrap();
    let (a, b) = tokio::join!(
        env.backend.remove(&id, RemoveOptions::forced()),
        env.backend.remove(&id, RemoveOptions::forced())
    );
    let results = [a, b];
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    for r in &results {
        if let Err(e) = r {
            assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        }
    }
    assert!(
        env.backend
            .list(&ListFilter {
                all: true,
                ..ListFilter::default()
            })
            .await
            .unwrap()
            .is_empty()
    );
    let containers = env.store.state_dir().join("native-containers");
    assert!(
        entries(&containers).is_empty(),
        "{:?}",
        entries(&containers)
    );
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&id));
}

// ---- images ----------------------------------------------------------------------------------

fn tar_dir(dir: &Path, out: &Path) {
    let mut builder = tar::Builder::new(fs::File::create(out).unwrap());
    builder.append_dir_all(".", dir).unwrap();
    builder.into_inner().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_docker_archive_imports_with_whiteouts_and_image_defaults() {
    let env = Env::new();
    let base = layer(true, &[("etc/secret", "s"), ("etc/keep", "k")]);
    let top = layer(false, &[("etc/.wh.secret", ""), ("etc/new", "n")]);
    let archive = env.dir.path().join("image.tar");
    docker_archive(&archive, "app:1", &[base, top], None);
    let image = env
        .backend
        .images()
        .import_archive(&archive, None, &mut |_| {})
        .unwrap();
    assert_eq!(image.names, ["docker.io/library/app:1"]);
    assert_eq!(image.layers.len(), 2);
    assert_eq!(env.backend.images().resolve("app:1").unwrap().id, image.id);
    assert_eq!(
        env.backend.images().resolve(&image.id[..10]).unwrap().id,
        image.id
    );
    let (code, out, _) = env.run(spec("app:1", &[])).await;
    assert_eq!(code, 0);
    assert_eq!(out, "keep\nnew\napp:1\n", "the whiteout hides etc/secret");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oci_layout_with_gzip_layers_imports_as_directory_and_as_tar() {
    let env = Env::new();
    let layout = env.dir.path().join("layout");
    oci_layout(
        &layout,
        "oci-app",
        &[layer(true, &[]), layer(false, &[("etc/hello", "hi")])],
    );
    let image = env
        .backend
        .images()
        .import_archive(&layout, None, &mut |_| {})
        .unwrap();
    assert_eq!(image.names, ["docker.io/library/oci-app:latest"]);
    let tarball = env.dir.path().join("layout.tar");
    tar_dir(&layout, &tarball);
    let again = env
        .backend
        .images()
        .import_archive(&tarball, Some("other:2"), &mut |_| {})
        .unwrap();
    assert_eq!(again.id, image.id);
    assert_eq!(
        again.names,
        [
            "docker.io/library/oci-app:latest",
            "docker.io/library/other:2"
        ]
    );
    let (code, out, _) = env.run(spec("other:2", &["cat", "/etc/hello"])).await;
    assert_eq!((code, out.as_str()), (0, "hi"));
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_archives_are_rejected_with_nothing_half_imported() {
    let env = Env::new();
    let good = env.dir.path().join("good.tar");
    docker_archive(
        &good,
        "x:1",
        &[layer(true, &[]), layer(false, &[("a", "b")])],
        None,
    );

    let bad_digest = env.dir.path().join("bad-digest.tar");
    let layers = [layer(true, &[]), layer(false, &[("a", "b")])];
    let mut ids: Vec<String> = layers.iter().map(|l| sha256_hex(l)).collect();
    ids[1] = "0".repeat(64);
    docker_archive(&bad_digest, "x:1", &layers, Some(ids));

    let truncated = env.dir.path().join("truncated.tar");
    let bytes = fs::read(&good).unwrap();
    fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();

    let no_manifest = env.dir.path().join("no-manifest.tar");
    let mut builder = tar::Builder::new(fs::File::create(&no_manifest).unwrap());
    let data = layer(false, &[("a", "b")]);
    builder
        .append_data(&mut file_header(data.len()), "layer0/layer.tar", &data[..])
        .unwrap();
    builder.into_inner().unwrap();

    let garbage = env.dir.path().join("garbage.tar");
    fs::write(&garbage, b"this is not a tar archive at all").unwrap();

    for (archive, expect) in [
        (&bad_digest, "diff id mismatch"),
        (&truncated, ""),
        (&no_manifest, "manifest.json"),
        (&garbage, ""),
    ] {
        let err = env
            .backend
            .images()
            .import_archive(archive, Some("x:1"), &mut |_| {})
            .unwrap_err();
        assert!(
            err.to_string().contains(expect),
            "{}: {err}",
            archive.display()
        );
        assert!(
            matches!(err.kind(), ErrorKind::Corrupt | ErrorKind::Invalid),
            "{}: {err}",
            archive.display()
        );
        assert!(env.backend.images().list().unwrap().is_empty());
        assert!(
            entries(&env.layers_dir()).is_empty(),
            "{:?}",
            entries(&env.layers_dir())
        );
        assert!(
            entries(&env.tmp_dir()).is_empty(),
            "{:?}",
            entries(&env.tmp_dir())
        );
    }
    // The bad digest names the layer.
    let err = env
        .backend
        .images()
        .import_archive(&bad_digest, None, &mut |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("layer1/layer.tar"), "{err}");
    env.backend
        .images()
        .import_archive(&good, None, &mut |_| {})
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn layers_are_shared_and_removed_with_the_last_image_using_them() {
    let env = Env::new();
    let base = layer(true, &[]);
    let (a, b) = (env.dir.path().join("a.tar"), env.dir.path().join("b.tar"));
    docker_archive(
        &a,
        "a:1",
        &[base.clone(), layer(false, &[("a", "a")])],
        None,
    );
    docker_archive(&b, "b:1", &[base, layer(false, &[("b", "b")])], None);
    env.backend
        .images()
        .import_archive(&a, None, &mut |_| {})
        .unwrap();
    env.backend
        .images()
        .import_archive(&b, None, &mut |_| {})
        .unwrap();
    assert_eq!(entries(&env.layers_dir()).len(), 3);
    env.backend
        .images()
        .remove("a:1", false, &Default::default())
        .unwrap();
    assert_eq!(entries(&env.layers_dir()).len(), 2, "the shared base stays");
    // A tag it does not have ("b" alone could be a prefix of its id, which resolves).
    env.backend
        .images()
        .remove("b:2", false, &Default::default())
        .unwrap_err();
    env.backend
        .images()
        .remove("b:1", false, &Default::default())
        .unwrap();
    assert!(entries(&env.layers_dir()).is_empty());
    assert!(env.backend.images().list().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_in_use_is_only_removed_with_force() {
    let env = Env::with_busybox();
    let id = env.create(spec(IMAGE, &["true"])).await;
    let err = env
        .backend
        .images()
        .remove(IMAGE, false, &Default::default())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains(&id[..12]), "{err}");
    env.backend
        .images()
        .remove(IMAGE, true, &Default::default())
        .unwrap();
    assert!(env.backend.images().list().unwrap().is_empty());
    env.backend
        .remove(&id, RemoveOptions::forced())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_follow_until_exit_and_kill_signals_the_container() {
    let env = Env::with_busybox();
    let id = env
        .create(spec(IMAGE, &["sh", "-c", "echo a; sleep 0.3; echo b >&2"]))
        .await;
    env.backend.start(&id).await.unwrap();
    let mut sink = Collect::default();
    let follow = LogOptions {
        follow: true,
        ..LogOptions::default()
    };
    env.backend.logs(&id, follow, &mut sink).await.unwrap();
    assert_eq!(
        (&sink.stdout[..], &sink.stderr[..]),
        (&b"a\n"[..], &b"b\n"[..])
    );
    assert_eq!(env.backend.wait(&id).await.unwrap(), 0);

    let sleeper = env.create(sleeper()).await;
    env.backend.start(&sleeper).await.unwrap();
    env.backend.kill(&sleeper, libc::SIGKILL).await.unwrap();
    assert_eq!(env.backend.wait(&sleeper).await.unwrap(), 137);
    let not_running = env.backend.kill(&sleeper, libc::SIGTERM).await.unwrap_err();
    assert_eq!(not_running.kind(), ErrorKind::Conflict);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_docker_25_archive_with_blobs_and_index_imports() {
    let env = Env::new();
    // docker 25+: an OCI layout (uncompressed layers) plus a manifest.json naming blobs.
    let dir = env.dir.path().join("d25");
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let layers = [layer(true, &[]), layer(false, &[("etc/v", "25\n")])];
    let mut layer_paths = Vec::new();
    for l in &layers {
        let digest = sha256_hex(l);
        fs::write(blobs.join(&digest), l).unwrap();
        layer_paths.push(format!("blobs/sha256/{digest}"));
    }
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256_hex(l)).collect();
    let cfg = image_config(&diff_ids, "d25");
    let cfg_digest = sha256_hex(&cfg);
    fs::write(blobs.join(&cfg_digest), &cfg).unwrap();
    let manifest = serde_json::json!([{"Config": format!("blobs/sha256/{cfg_digest}"),
        "RepoTags": ["docker.io/library/new:25"], "Layers": layer_paths}]);
    fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    fs::write(
        dir.join("index.json"),
        r#"{"schemaVersion":2,"manifests":[]}"#,
    )
    .unwrap();
    let tarball = env.dir.path().join("d25.tar");
    tar_dir(&dir, &tarball);
    let image = env
        .backend
        .images()
        .import_archive(&tarball, None, &mut |_| {})
        .unwrap();
    assert_eq!(image.names, ["docker.io/library/new:25"]);
    let (code, out, _) = env.run(spec("new:25", &["cat", "/etc/v"])).await;
    assert_eq!((code, out.as_str()), (0, "25\n"));
}
