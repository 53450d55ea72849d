//! `berth cri serve` through a real gRPC client on its unix socket: what the runtime is, its
//! readiness and cgroup driver, the image service on the native backend, and a SIGTERM that
//! ends the server cleanly. (Sandboxes and containers are not served yet.)

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use berth_cri::api::image_service_client::ImageServiceClient;
use berth_cri::api::runtime_service_client::RuntimeServiceClient;
use berth_cri::api::{
    CgroupDriver, ImageFsInfoRequest, ImageSpec, ImageStatusRequest, ListImagesRequest,
    RemoveImageRequest, RuntimeConfigRequest, StatusRequest, VersionRequest,
};
use berth_tests::env::BerthEnv;

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
        let sandboxes = client
            .list_pod_sandbox(berth_cri::api::ListPodSandboxRequest::default())
            .await
            .unwrap_err();
        assert_eq!(sandboxes.code(), tonic::Code::Unimplemented);
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
