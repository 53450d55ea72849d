//! `berth cri serve` through a real gRPC client on its unix socket: what the runtime is, its
//! readiness and cgroup driver, the image service on the native backend, a sandbox and its
//! container through the plugin pipeline (ExecSync, CRI logs, stop and remove twice, a plugin's
//! deny as the call's error), and a SIGTERM that ends the server cleanly.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use berth_cri::api::image_service_client::ImageServiceClient;
use berth_cri::api::runtime_service_client::RuntimeServiceClient;
use berth_cri::api::{
    CgroupDriver, ContainerConfig, ContainerFilter, ContainerMetadata, ContainerState,
    ContainerStatus, ContainerStatusRequest, CreateContainerRequest, ExecSyncRequest,
    ImageFsInfoRequest, ImageSpec, ImageStatusRequest, LinuxContainerResources,
    ListContainersRequest, ListImagesRequest, ListPodSandboxRequest, Mount, PodSandboxConfig,
    PodSandboxMetadata, PodSandboxState, PodSandboxStatusRequest, PortMapping,
    RemoveContainerRequest, RemoveImageRequest, RemovePodSandboxRequest, RunPodSandboxRequest,
    RuntimeConfigRequest, StartContainerRequest, StatusRequest, StopContainerRequest,
    StopPodSandboxRequest, UpdateContainerResourcesRequest, VersionRequest,
};
use berth_tests::env::BerthEnv;
use berth_tests::plugins::{GUARD, NAMING, SELECTOR};

struct Server {
    child: Child,
    socket: PathBuf,
}

impl Server {
    /// `berth cri serve` on a socket in the test's own dir, once it accepts connections.
    fn start(env: &BerthEnv) -> Server {
        let socket = env.dir.path().join("cri.sock");
        let listen = format!("unix://{}", socket.display());
        let child = env
            .command(&["cri", "serve", "--listen", &listen])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting berth cri serve");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "the CRI socket never answered");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child, socket }
    }

    /// SIGTERM; the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn channel(socket: &Path) -> tonic::transport::Channel {
    berth_cri::connect(socket).await.unwrap()
}

#[test]
fn the_runtime_says_what_it_is_that_it_is_ready_and_that_it_uses_cgroupfs() {
    let env = BerthEnv::new("").with_busybox();
    let server = Server::start(&env);
    runtime().block_on(async {
        let mut client = RuntimeServiceClient::new(channel(&server.socket).await);
        let version = client
            .version(VersionRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(version.runtime_name, "berth");
        assert_eq!(version.runtime_api_version, "v1");
        assert_eq!(version.version, "0.1.0");

        let status = client
            .status(StatusRequest::default())
            .await
            .unwrap()
            .into_inner();
        let conditions = status.status.unwrap().conditions;
        for kind in ["RuntimeReady", "NetworkReady"] {
            let condition = conditions.iter().find(|c| c.r#type == kind).unwrap();
            assert!(condition.status, "{kind}: {condition:?}");
        }

        let config = client
            .runtime_config(RuntimeConfigRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            config.linux.unwrap().cgroup_driver,
            i32::from(CgroupDriver::Cgroupfs)
        );

        // What is not served yet says so, as gRPC does.
        let checkpoint = client
            .checkpoint_container(berth_cri::api::CheckpointContainerRequest::default())
            .await
            .unwrap_err();
        assert_eq!(checkpoint.code(), tonic::Code::Unimplemented);
    });
    assert!(server.terminate().success(), "SIGTERM ends it cleanly");
}

#[test]
fn images_are_listed_found_missing_and_removed_idempotently() {
    let env = BerthEnv::new("").with_busybox();
    let server = Server::start(&env);
    let socket = server.socket.clone();
    runtime().block_on(async {
        let mut images = ImageServiceClient::new(channel(&socket).await);
        let listed = images
            .list_images(ListImagesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .images;
        let busybox = listed
            .iter()
            .find(|i| i.repo_tags.iter().any(|t| t.contains("busybox")))
            .unwrap_or_else(|| panic!("no busybox in {listed:?}"));
        assert!(busybox.id.starts_with("sha256:"), "{busybox:?}");
        assert!(busybox.size > 0, "{busybox:?}");

        let spec = |image: &str| {
            Some(ImageSpec {
                image: image.into(),
                ..ImageSpec::default()
            })
        };
        let found = images
            .image_status(ImageStatusRequest {
                image: spec("busybox:local"),
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(found.image.unwrap().id, busybox.id);
        // A missing image is an empty answer (the kubelet then pulls), not an error.
        let missing = images
            .image_status(ImageStatusRequest {
                image: spec("nothing-here:1"),
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(missing.image.is_none());
        let unnamed = images
            .image_status(ImageStatusRequest::default())
            .await
            .unwrap_err();
        assert_eq!(unnamed.code(), tonic::Code::InvalidArgument);

        let fs = images
            .image_fs_info(ImageFsInfoRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(fs.image_filesystems[0].used_bytes.as_ref().unwrap().value > 0);

        for _ in 0..2 {
            images
                .remove_image(RemoveImageRequest {
                    image: spec("busybox:local"),
                })
                .await
                .unwrap();
        }
    });
    let gone = env.berth(&["image", "ls", "--json"]).ok().json();
    assert_eq!(gone, serde_json::json!([]), "{gone}");
    assert!(server.terminate().success());
    assert!(!socket.exists(), "the socket is removed at exit");
}

#[test]
fn a_second_server_on_a_live_socket_is_refused() {
    let env = BerthEnv::new("");
    let server = Server::start(&env);
    let listen = format!("unix://{}", server.socket.display());
    let second = env.berth(&["cri", "serve", "--listen", &listen]);
    assert_eq!(second.code, 73, "{second:?}");
    assert!(second.stderr.contains("another server"), "{second:?}");
    let relative = env.berth(&["cri", "serve", "--listen", "cri.sock"]);
    assert_eq!(relative.code, 64, "{relative:?}");
    assert!(server.terminate().success());
}

fn sandbox_config(env: &BerthEnv, name: &str, host_port: i32, backend: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: env.dir.path().join("pods").join(name).display().to_string(),
        port_mappings: (host_port > 0)
            .then(|| PortMapping {
                container_port: 80,
                host_port,
                host_ip: "127.0.0.1".into(),
                ..PortMapping::default()
            })
            .into_iter()
            .collect(),
        // The selector places a pod by its berth.backend label, as a kubelet's pod labels it.
        labels: [
            ("io.kubernetes.pod.name".to_string(), name.to_string()),
            ("berth.backend".to_string(), backend.to_string()),
        ]
        .into(),
        annotations: [("team".to_string(), "infra".to_string())].into(),
        ..PodSandboxConfig::default()
    }
}

fn container_config(name: &str, command: &[&str], mounts: Vec<Mount>) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: "busybox:local".into(),
            ..ImageSpec::default()
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}_0.log"),
        labels: [("io.kubernetes.container.name".to_string(), name.to_string())].into(),
        mounts,
        ..ContainerConfig::default()
    }
}

/// The CRI log lines of `path` once `want` lines are there.
fn cri_log_lines(path: &Path, want: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= want || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The naming plugin is the default DNS-label rule; the selector places pods by label; the
/// guard plays both hook worlds: it refuses host mounts outside /tmp and /srv, and host ports
/// outside 8000-8999.
fn plugins() -> String {
    format!(
        "[[plugins]]\nname = \"naming\"\npath = \"{}\"\nworlds = [\"name-policy\"]\n\n\
         [[plugins]]\nname = \"selector\"\npath = \"{}\"\nworlds = [\"backend-policy\"]\n\
         grants = [\"containers\"]\n\n\
         [[plugins]]\nname = \"guard\"\npath = \"{}\"\n\
         worlds = [\"lifecycle-hooks\", \"pod-lifecycle-hooks\"]\n\
         settings = {{ allowed-mount-prefixes = \"/tmp,/srv\", allowed-host-ports = \"8000-8999\" }}\n",
        NAMING.path().display(),
        SELECTOR.path().display(),
        GUARD.path().display()
    )
}

#[test]
fn on_native_a_sandbox_and_its_container_run_exec_log_and_go_through_the_plugins() {
    let env = BerthEnv::new(&plugins()).with_busybox();
    sandbox_flow(&env, "native");
}

#[test]
fn on_containerd_a_sandbox_and_its_container_run_exec_log_and_go_through_the_plugins() {
    let env = berth_tests::containerd::containerd_env(&plugins());
    sandbox_flow(&env, "containerd");
    let left = berth_tests::containerd::ctr(&["containers", "ls", "-q"]);
    assert_eq!(left, "", "containers left in containerd");
}

/// A sandbox placed on `backend`, a container in it, ExecSync, the CRI log, a plugin's deny of
/// a sandbox and of a container, then stop and remove, each twice.
fn sandbox_flow(env: &BerthEnv, backend: &str) {
    let server = Server::start(env);
    runtime().block_on(async {
        let mut cri = RuntimeServiceClient::new(channel(&server.socket).await);
        let config = sandbox_config(env, "web", 8080, backend);
        let sandbox = run_sandbox(&mut cri, &config).await;
        let status = cri
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: sandbox.clone(),
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap();
        assert_eq!(status.state, i32::from(PodSandboxState::SandboxReady));
        assert_eq!(status.metadata, config.metadata);
        assert_eq!(status.labels, config.labels);
        assert_eq!(status.annotations, config.annotations);
        let ip = status.network.unwrap().ip;
        assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "pod ip {ip:?}");
        let pod = env.berth(&["pod", "inspect", &sandbox]).ok().json();
        assert_eq!(pod[0]["backend"], backend, "{pod}");

        // The guard refuses a sandbox whose host port is outside its range: the call fails
        // with its reason, and nothing of that sandbox is left.
        let refused = cri
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(sandbox_config(env, "wide", 9000, backend)),
                ..RunPodSandboxRequest::default()
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
        assert!(refused.message().contains("host port 9000"), "{refused:?}");
        let listed = cri
            .list_pod_sandbox(ListPodSandboxRequest::default())
            .await
            .unwrap()
            .into_inner()
            .items;
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0].id, sandbox);

        let script = "echo hello; echo oops >&2; printf part; sleep 1000";
        let main = container_config("main", &["sh", "-c", script], Vec::new());
        let created = run_container(&mut cri, &sandbox, main, Some(config.clone())).await;
        let running = container_status(&mut cri, &created).await.unwrap();
        assert_eq!(running.state, i32::from(ContainerState::ContainerRunning));
        assert_eq!(running.metadata.unwrap().name, "main");

        // The log, in the CRI's format at the kubelet's path.
        let log = env.dir.path().join("pods/web/main_0.log");
        assert_eq!(running.log_path, log.display().to_string());
        let lines = cri_log_lines(&log, 3);
        let mut seen = Vec::new();
        for line in &lines {
            let mut fields = line.splitn(4, ' ');
            let time = fields.next().unwrap();
            chrono::DateTime::parse_from_rfc3339(time).unwrap_or_else(|e| panic!("{line}: {e}"));
            let rest: Vec<&str> = fields.collect();
            seen.push(rest.join(" "));
        }
        // Two pipes: each stream's lines in order, the streams' interleaving as read.
        let stream = |name: &str| -> Vec<&str> {
            seen.iter()
                .map(String::as_str)
                .filter(|l| l.starts_with(name))
                .collect()
        };
        assert_eq!(
            stream("stdout"),
            ["stdout F hello", "stdout P part"],
            "{lines:?}"
        );
        assert_eq!(stream("stderr"), ["stderr F oops"], "{lines:?}");

        // ExecSync: both outputs captured apart, the exit code, and a timeout honoured.
        let ran = cri
            .exec_sync(ExecSyncRequest {
                container_id: created.clone(),
                cmd: ["sh", "-c", "echo out; echo err >&2; exit 3"]
                    .map(String::from)
                    .to_vec(),
                timeout: 10,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (ran.stdout.as_slice(), ran.stderr.as_slice()),
            (&b"out\n"[..], &b"err\n"[..])
        );
        assert_eq!(ran.exit_code, 3);
        let slow = cri
            .exec_sync(ExecSyncRequest {
                container_id: created.clone(),
                cmd: ["sleep", "30"].map(String::from).to_vec(),
                timeout: 1,
            })
            .await
            .unwrap_err();
        assert_eq!(slow.code(), tonic::Code::DeadlineExceeded, "{slow:?}");
        // Output without end is kept to 8 MiB, and the call still answers.
        let flood = cri
            .clone()
            .max_decoding_message_size(32 << 20)
            .exec_sync(ExecSyncRequest {
                container_id: created.clone(),
                cmd: ["head", "-c", "20000000", "/dev/zero"].map(String::from).to_vec(),
                timeout: 30,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(flood.stdout.len(), 8 << 20);
        assert_eq!(flood.exit_code, 0);

        // New limits on the running container, seen from inside it.
        let limit = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max";
        cri.update_container_resources(UpdateContainerResourcesRequest {
            container_id: created.clone(),
            linux: Some(LinuxContainerResources {
                memory_limit_in_bytes: 96 << 20,
                cpu_period: 100_000,
                cpu_quota: 50_000,
                ..LinuxContainerResources::default()
            }),
            ..UpdateContainerResourcesRequest::default()
        })
        .await
        .unwrap();
        let seen = cri
            .exec_sync(ExecSyncRequest {
                container_id: created.clone(),
                cmd: ["sh", "-c", limit].map(String::from).to_vec(),
                timeout: 10,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(String::from_utf8_lossy(&seen.stdout).trim(), (96u64 << 20).to_string());

        // A container the guard refuses (a host mount outside its prefixes) fails its create
        // with the guard's reason and leaves no container.
        let etc = Mount {
            container_path: "/host-etc".into(),
            host_path: "/etc".into(),
            readonly: true,
            ..Mount::default()
        };
        let refused = cri
            .create_container(CreateContainerRequest {
                pod_sandbox_id: sandbox.clone(),
                config: Some(container_config("peek", &["true"], vec![etc])),
                sandbox_config: Some(config.clone()),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
        assert!(refused.message().contains("guard"), "{refused:?}");
        assert!(refused.message().contains("/etc"), "{refused:?}");
        let containers = cri
            .list_containers(ListContainersRequest {
                filter: Some(ContainerFilter {
                    pod_sandbox_id: sandbox.clone(),
                    ..ContainerFilter::default()
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .containers;
        assert_eq!(containers.len(), 1, "{containers:?}");
        assert_eq!(containers[0].id, created);

        // Stop and remove, each twice: the second is done too.
        for _ in 0..2 {
            cri.stop_container(StopContainerRequest {
                container_id: created.clone(),
                timeout: 1,
            })
            .await
            .unwrap();
        }
        let exited = container_status(&mut cri, &created).await.unwrap();
        assert_eq!(exited.state, i32::from(ContainerState::ContainerExited));
        assert!(exited.finished_at > 0);
        for _ in 0..2 {
            cri.remove_container(RemoveContainerRequest {
                container_id: created.clone(),
            })
            .await
            .unwrap();
        }
        let gone = container_status(&mut cri, &created).await.unwrap_err();
        assert_eq!(gone.code(), tonic::Code::NotFound);
        for _ in 0..2 {
            cri.stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: sandbox.clone(),
            })
            .await
            .unwrap();
        }
        for _ in 0..2 {
            cri.remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: sandbox.clone(),
            })
            .await
            .unwrap();
        }
    });
    // A child that has just exited is reaped on the server's next SIGCHLD; one never reaped
    // stays a zombie.
    let reaped = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        zombies_of(server.child.id()) == 0
    });
    assert!(reaped, "the server reaps what it started");
    assert!(server.terminate().success());
    let pods = env.berth(&["pod", "ls", "--json"]).ok().json();
    assert_eq!(pods, serde_json::json!([]), "{pods}");
    assert_eq!(env.berth(&["ps", "-a", "-q"]).ok().stdout, "");
}

/// Runs a sandbox of `config`; its id.
async fn run_sandbox(
    cri: &mut RuntimeServiceClient<tonic::transport::Channel>,
    config: &PodSandboxConfig,
) -> String {
    cri.run_pod_sandbox(RunPodSandboxRequest {
        config: Some(config.clone()),
        ..RunPodSandboxRequest::default()
    })
    .await
    .unwrap()
    .into_inner()
    .pod_sandbox_id
}

/// Creates and starts a container in `sandbox`; its id.
async fn run_container(
    cri: &mut RuntimeServiceClient<tonic::transport::Channel>,
    sandbox: &str,
    config: ContainerConfig,
    sandbox_config: Option<PodSandboxConfig>,
) -> String {
    let id = cri
        .create_container(CreateContainerRequest {
            pod_sandbox_id: sandbox.into(),
            config: Some(config),
            sandbox_config,
        })
        .await
        .unwrap()
        .into_inner()
        .container_id;
    cri.start_container(StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap();
    id
}

/// The streaming URL of an attachment to `container` with stdin, on its terminal or not (a
/// terminal has no stderr of its own).
async fn attach_url(
    cri: &mut RuntimeServiceClient<tonic::transport::Channel>,
    container: &str,
    tty: bool,
) -> String {
    cri.attach(berth_cri::api::AttachRequest {
        container_id: container.into(),
        stdin: true,
        stdout: true,
        stderr: !tty,
        tty,
    })
    .await
    .unwrap()
    .into_inner()
    .url
}

async fn container_status(
    cri: &mut RuntimeServiceClient<tonic::transport::Channel>,
    id: &str,
) -> Result<ContainerStatus, tonic::Status> {
    let answer = cri
        .container_status(ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        })
        .await?;
    Ok(answer.into_inner().status.unwrap())
}

/// Hot reload: a broken plugin set keeps the old one serving (and says so in Status, `plugin
/// reload` and `plugin ls`); a good one replaces it at once, in the same server.
#[test]
fn a_reload_swaps_the_plugins_and_a_broken_set_keeps_the_old_one_serving() {
    let guard = |path: &Path, prefixes: &str| {
        format!(
            "[[plugins]]\nname = \"guard\"\npath = \"{}\"\nworlds = [\"lifecycle-hooks\"]\n\
             settings = {{ allowed-mount-prefixes = \"{prefixes}\" }}\n",
            path.display()
        )
    };
    let env = BerthEnv::new(&guard(&GUARD.path(), "/tmp")).with_busybox();
    let original = std::fs::read_to_string(&env.config).unwrap();
    let server = Server::start(&env);
    let etc = || Mount {
        container_path: "/host-etc".into(),
        host_path: "/etc".into(),
        readonly: true,
        ..Mount::default()
    };
    runtime().block_on(async {
        let mut cri = RuntimeServiceClient::new(channel(&server.socket).await);
        let config = sandbox_config(&env, "reload", 0, "native");
        let sandbox = run_sandbox(&mut cri, &config).await;
        let create = |name: &str| CreateContainerRequest {
            pod_sandbox_id: sandbox.clone(),
            config: Some(container_config(name, &["sleep", "1000"], vec![etc()])),
            sandbox_config: Some(config.clone()),
        };
        let denied = cri.create_container(create("first")).await.unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");

        // A plugin that is no component: the reload fails and the old guard still decides.
        let junk = env.dir.path().join("broken.wasm");
        std::fs::write(&junk, b"not a component").unwrap();
        let broken = original.replace(
            &GUARD.path().display().to_string(),
            &junk.display().to_string(),
        );
        std::fs::write(&env.config, broken).unwrap();
        let failed = env.berth(&["plugin", "reload"]);
        assert!(matches!(failed.code, 70 | 78), "{failed:?}");
        assert!(failed.stderr.contains("keep serving"), "{failed:?}");
        let conditions = cri
            .status(StatusRequest::default())
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap()
            .conditions;
        let plugins = conditions
            .iter()
            .find(|c| c.r#type == "BerthPluginsReloaded")
            .unwrap();
        assert!(!plugins.status, "{plugins:?}");
        assert_eq!(plugins.reason, "PluginReloadFailed");
        let ready = conditions
            .iter()
            .find(|c| c.r#type == "RuntimeReady")
            .unwrap();
        assert!(ready.status, "the runtime stays ready: {ready:?}");
        let listed = env.berth(&["plugin", "ls"]);
        assert!(
            listed
                .stderr
                .contains("still serves its previous plugins (guard)"),
            "{listed:?}"
        );
        let still = cri.create_container(create("second")).await.unwrap_err();
        assert_eq!(still.code(), tonic::Code::PermissionDenied, "{still:?}");

        // A good set: swapped in, and the next call sees it.
        std::fs::write(&env.config, original.replace("\"/tmp\"", "\"/tmp,/etc\"")).unwrap();
        let reloaded = env.berth(&["plugin", "reload"]).ok();
        assert_eq!(reloaded.stdout.trim(), "reloaded: guard");
        cri.create_container(create("third")).await.unwrap();
        let conditions = cri
            .status(StatusRequest::default())
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap()
            .conditions;
        assert!(conditions.iter().all(|c| c.status), "{conditions:?}");
        cri.remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: sandbox,
        })
        .await
        .unwrap();
    });
    assert!(server.terminate().success());
    let no_server = env.berth(&["plugin", "reload"]);
    assert_eq!(no_server.code, 69, "{no_server:?}");
}

/// Exec over the streaming server, as a kubelet's client speaks it: a WebSocket in
/// Kubernetes' v5 channel protocol, stdin in and closed, stdout out, and the outcome as a
/// Status; a URL serves one connection only. Attach to a shell with its stdin open, twice.
/// Then a restarted server finds the sandbox and its containers still running.
#[test]
fn exec_and_attach_stream_over_websockets_and_a_restarted_server_finds_what_it_ran() {
    let env = BerthEnv::new("").with_busybox();
    let server = Server::start(&env);
    let ids = runtime().block_on(async {
        let mut cri = RuntimeServiceClient::new(channel(&server.socket).await);
        let config = sandbox_config(&env, "streams", 0, "native");
        let sandbox = run_sandbox(&mut cri, &config).await;
        let container = run_container(
            &mut cri,
            &sandbox,
            container_config("shell", &["sleep", "1000"], Vec::new()),
            Some(config),
        )
        .await;

        // Runs `command` with `input` on stdin: (stdout, stderr, the Status).
        let run = async |command: &[&str], input: &[u8]| {
            let url = cri
                .clone()
                .exec(berth_cri::api::ExecRequest {
                    container_id: container.clone(),
                    cmd: command.iter().map(|s| s.to_string()).collect(),
                    stdin: true,
                    stdout: true,
                    stderr: true,
                    ..berth_cri::api::ExecRequest::default()
                })
                .await
                .unwrap()
                .into_inner()
                .url;
            channel_session(&url, input, None).await
        };
        let (stdout, stderr, status) =
            run(&["sh", "-c", "cat; echo err >&2"], b"through stdin\n").await;
        assert_eq!(stdout, "through stdin\n");
        assert_eq!(stderr, "err\n");
        assert_eq!(status["status"], "Success", "{status}");
        let (_, _, status) = run(&["sh", "-c", "exit 3"], b"").await;
        assert_eq!(status["reason"], "NonZeroExitCode", "{status}");
        assert_eq!(status["details"]["causes"][0]["message"], "3", "{status}");

        // Attach to a shell created with its stdin open: a command in, its output out, and
        // closing stdin detaches, leaving the shell running for the next attach.
        let config = container_config("attached", &["sh"], Vec::new());
        let shell = run_container(
            &mut cri,
            &sandbox,
            ContainerConfig {
                stdin: true,
                ..config
            },
            None,
        )
        .await;
        for word in ["hello", "again"] {
            let url = attach_url(&mut cri, &shell, false).await;
            let input = format!("echo {word}\n");
            let (stdout, _, status) =
                channel_session(&url, input.as_bytes(), Some(&format!("{word}\n"))).await;
            assert_eq!(stdout, format!("{word}\n"));
            assert_eq!(status["status"], "Success", "{status}");
            let still = container_status(&mut cri, &shell).await.unwrap();
            assert_eq!(still.state, i32::from(ContainerState::ContainerRunning));
        }
        (sandbox, container)
    });
    let (sandbox, container) = ids;
    assert!(server.terminate().success());

    // A new server finds the sandbox and its container as they were, still running.
    let server = Server::start(&env);
    runtime().block_on(async {
        let mut cri = RuntimeServiceClient::new(channel(&server.socket).await);
        let sandboxes = cri
            .list_pod_sandbox(ListPodSandboxRequest::default())
            .await
            .unwrap()
            .into_inner()
            .items;
        assert_eq!(sandboxes.len(), 1, "{sandboxes:?}");
        assert_eq!(sandboxes[0].id, sandbox);
        assert_eq!(sandboxes[0].state, i32::from(PodSandboxState::SandboxReady));
        let running = container_status(&mut cri, &container).await.unwrap();
        assert_eq!(running.state, i32::from(ContainerState::ContainerRunning));
        let ran = cri
            .exec_sync(ExecSyncRequest {
                container_id: container.clone(),
                cmd: ["echo", "still here"].map(String::from).to_vec(),
                timeout: 10,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ran.stdout, b"still here\n");
        cri.remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: sandbox,
        })
        .await
        .unwrap();
    });
    assert!(server.terminate().success());
}

/// A WebSocket to the server a `ws://HOST:PORT/...` request names.
async fn connect(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> Result<
    (
        tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    tokio_tungstenite::tungstenite::Error,
> {
    let authority = request.uri().authority().unwrap().to_string();
    let tcp = tokio::net::TcpStream::connect(authority).await.unwrap();
    tokio_tungstenite::client_async(request, tcp).await
}

/// How many exited children of `pid` wait to be reaped now.
fn zombies_of(pid: u32) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            // Fields after the command name: state, then the parent's pid.
            let rest = stat.rsplit(')').next().unwrap_or("");
            let mut fields = rest.split_whitespace();
            fields.next() == Some("Z") && fields.next() == Some(&pid.to_string())
        })
        .count()
}

/// One session on a streaming URL in the v5 channel protocol: `input` on stdin, then stdin
/// closed (once stdout holds `wait_for`, when given); the output and the final Status. The
/// URL then serves no second connection.
async fn channel_session(
    url: &str,
    input: &[u8],
    wait_for: Option<&str>,
) -> (String, String, serde_json::Value) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let ws = url.replace("http://", "ws://");
    let mut request = ws.clone().into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v5.channel.k8s.io, v4.channel.k8s.io".parse().unwrap(),
    );
    let (mut socket, answer) = connect(request).await.unwrap();
    assert_eq!(
        answer.headers()["Sec-WebSocket-Protocol"],
        "v5.channel.k8s.io"
    );
    let mut frame = vec![0u8];
    frame.extend_from_slice(input);
    socket.send(Message::Binary(frame)).await.unwrap();
    let (mut stdout, mut stderr, mut status) = (Vec::new(), Vec::new(), None);
    let mut closed = false;
    if wait_for.is_none() {
        socket.send(Message::Binary(vec![255, 0])).await.unwrap();
        closed = true;
    }
    while let Some(Ok(message)) = socket.next().await {
        let Message::Binary(data) = message else {
            continue;
        };
        match data[0] {
            1 => stdout.extend_from_slice(&data[1..]),
            2 => stderr.extend_from_slice(&data[1..]),
            3 => status = Some(serde_json::from_slice::<serde_json::Value>(&data[1..]).unwrap()),
            other => panic!("a frame on channel {other}"),
        }
        let seen = wait_for.is_some_and(|w| String::from_utf8_lossy(&stdout).contains(w));
        if !closed && seen {
            socket.send(Message::Binary(vec![255, 0])).await.unwrap();
            closed = true;
        }
    }
    let again = connect(ws.into_client_request().unwrap()).await;
    assert!(again.is_err(), "a URL serves one connection");
    (
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
        status.unwrap(),
    )
}

/// Exec and attach with `tty`: one output (stdout), sized by the client's resize messages
/// (channel 4), and tty with stderr refused as the CRI says; on native (its supervisor's pty)
/// and on containerd (its shim's, fed through berth's logger).
#[test]
fn a_terminal_over_the_streams_is_sized_by_its_client() {
    terminal_over_the_streams(&BerthEnv::new("").with_busybox(), "native");
    // The selector places the pod by its label.
    let on_containerd = berth_tests::containerd::containerd_env(&plugins());
    terminal_over_the_streams(&on_containerd, "containerd");
}

fn terminal_over_the_streams(env: &BerthEnv, backend: &str) {
    let server = Server::start(env);
    runtime().block_on(async {
        let mut cri = RuntimeServiceClient::new(channel(&server.socket).await);
        let config = sandbox_config(env, "terminal", 0, backend);
        let sandbox = run_sandbox(&mut cri, &config).await;
        let shell = run_container(
            &mut cri,
            &sandbox,
            ContainerConfig {
                stdin: true,
                tty: true,
                ..container_config("console", &["sh"], Vec::new())
            },
            Some(config),
        )
        .await;

        let exec = |tty: bool, stderr: bool| berth_cri::api::ExecRequest {
            container_id: shell.clone(),
            cmd: vec!["sh".into()],
            stdin: true,
            stdout: true,
            stderr,
            tty,
        };
        let refused = cri.exec(exec(true, true)).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");

        let url = cri.exec(exec(true, false)).await.unwrap().into_inner().url;
        let (output, status) = terminal_session(&url, (22, 77), "exit 4\n").await;
        assert!(output.contains("22 77"), "{backend}: {output}");
        assert_eq!(status["details"]["causes"][0]["message"], "4", "{status}");

        let url = attach_url(&mut cri, &shell, true).await;
        // Closing stdin detaches; the container's shell runs on.
        let (output, status) = terminal_session(&url, (30, 100), "").await;
        assert!(output.contains("30 100"), "{backend}: {output}");
        assert_eq!(status["status"], "Success", "{status}");
        let still = container_status(&mut cri, &shell).await.unwrap();
        assert_eq!(
            still.state,
            i32::from(ContainerState::ContainerRunning),
            "{backend}"
        );
        cri.remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: sandbox,
        })
        .await
        .unwrap();
    });
    assert!(server.terminate().success());
}

/// A v5 session on a terminal: sized to (rows, cols), `stty size` typed until the size shows,
/// then `last` typed and stdin closed; the output (all on stdout) and the final Status.
async fn terminal_session(
    url: &str,
    (rows, cols): (u16, u16),
    last: &str,
) -> (String, serde_json::Value) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url
        .replace("http://", "ws://")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v5.channel.k8s.io".parse().unwrap(),
    );
    let (mut socket, _) = connect(request).await.unwrap();
    let on = |channel: u8, data: &[u8]| Message::Binary([&[channel][..], data].concat());
    let size = format!("{{\"Width\":{cols},\"Height\":{rows}}}");
    socket.send(on(4, size.as_bytes())).await.unwrap();
    let want = format!("{rows} {cols}");
    let (mut output, mut status) = (String::new(), None);
    let mut asked = Instant::now() - Duration::from_secs(1);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut done = false;
    loop {
        if !done && asked.elapsed() > Duration::from_millis(300) {
            let typed = if output.contains(&want) {
                done = true;
                last.to_string()
            } else {
                "stty size\n".to_string()
            };
            socket.send(on(0, typed.as_bytes())).await.unwrap();
            if done {
                socket.send(on(255, &[0])).await.unwrap();
            }
            asked = Instant::now();
        }
        assert!(Instant::now() < deadline, "never sized: {output}");
        let next = tokio::time::timeout(Duration::from_millis(100), socket.next()).await;
        let Ok(message) = next else { continue };
        let Some(Ok(Message::Binary(data))) = message else {
            break;
        };
        match data[0] {
            1 => output.push_str(&String::from_utf8_lossy(&data[1..])),
            3 => status = Some(serde_json::from_slice::<serde_json::Value>(&data[1..]).unwrap()),
            other => panic!("a frame on channel {other} from a terminal: {data:?}"),
        }
    }
    (output, status.expect("a final Status"))
}
