//! The CRI runtime service: what the runtime is (`Version`), whether it and its network are
//! ready (`Status`), its cgroup driver (`RuntimeConfig`), and the sandbox and container calls,
//! answered by [`sandboxes`](crate::sandboxes) and [`containers`](crate::containers).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use std::time::Duration;

use crate::api::runtime_service_server::RuntimeService;
use crate::api::*;
use crate::{Shared, containers, sandboxes};

/// The kubelet's CRI API version berth answers (the CRI's own `Version` field).
const KUBELET_API_VERSION: &str = "0.1.0";

pub struct Runtime {
    shared: Arc<Shared>,
}

impl Runtime {
    pub(crate) fn new(shared: Arc<Shared>) -> Runtime {
        Runtime { shared }
    }
}

fn condition(kind: &str, ready: Result<(), (String, String)>) -> RuntimeCondition {
    match ready {
        Ok(()) => RuntimeCondition {
            r#type: kind.into(),
            status: true,
            ..RuntimeCondition::default()
        },
        Err((reason, message)) => RuntimeCondition {
            r#type: kind.into(),
            status: false,
            reason,
            message,
        },
    }
}

#[tonic::async_trait]
impl RuntimeService for Runtime {
    async fn version(
        &self,
        _: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            version: KUBELET_API_VERSION.into(),
            runtime_name: "berth".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: "v1".into(),
        }))
    }

    /// `RuntimeReady`: the backend pods run on answers its probe. `NetworkReady`: the CNI
    /// plugins berth's networks need are installed.
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let engine = &self.shared.engine;
        let backend = engine
            .backends()
            .names()
            .find(|b| engine.backends().can(b, berth_core::Capability::Pods))
            .map(str::to_string);
        let runtime = match backend {
            Some(name) => {
                let probe = engine.backends().probe(&name).await;
                if probe.healthy {
                    Ok(())
                } else {
                    Err((
                        "BackendUnhealthy".into(),
                        format!("backend {name:?} does not answer its probe"),
                    ))
                }
            }
            None => Err((
                "NoPodBackend".into(),
                "no configured backend runs pods (configure a native or containerd backend)".into(),
            )),
        };
        let runner = berth_network::cni::Runner::new(engine.config.network.cni_bin_dirs.clone());
        let network = ["bridge", "host-local", "portmap"]
            .iter()
            .try_for_each(|plugin| runner.find(plugin).map(|_| ()))
            .map_err(|e| ("CNIPluginMissing".to_string(), e.to_string()));
        // Not one the kubelet requires: whether the last plugin reload took.
        let plugins = match self.shared.reloader.state().failed {
            None => Ok(()),
            Some(why) => Err((
                "PluginReloadFailed".to_string(),
                format!("the previous plugins still serve: {why}"),
            )),
        };
        Ok(Response::new(StatusResponse {
            status: Some(RuntimeStatus {
                conditions: vec![
                    condition("RuntimeReady", runtime),
                    condition("NetworkReady", network),
                    condition("BerthPluginsReloaded", plugins),
                ],
            }),
            ..StatusResponse::default()
        }))
    }

    /// berth manages cgroups itself, under cgroupfs: no systemd slices.
    async fn runtime_config(
        &self,
        _: Request<RuntimeConfigRequest>,
    ) -> Result<Response<RuntimeConfigResponse>, Status> {
        Ok(Response::new(RuntimeConfigResponse {
            linux: Some(LinuxRuntimeConfiguration {
                cgroup_driver: CgroupDriver::Cgroupfs.into(),
            }),
        }))
    }

    async fn run_pod_sandbox(
        &self,
        request: Request<RunPodSandboxRequest>,
    ) -> Result<Response<RunPodSandboxResponse>, Status> {
        let request = request.into_inner();
        let config = request
            .config
            .ok_or_else(|| Status::invalid_argument("the request has no config"))?;
        let engine = self.shared.engine.clone();
        let id = self
            .shared
            .call(sandboxes::run(engine, config, request.runtime_handler))
            .await?;
        Ok(Response::new(RunPodSandboxResponse { pod_sandbox_id: id }))
    }

    async fn stop_pod_sandbox(
        &self,
        request: Request<StopPodSandboxRequest>,
    ) -> Result<Response<StopPodSandboxResponse>, Status> {
        let id = request.into_inner().pod_sandbox_id;
        let engine = &self.shared.engine;
        self.shared.call(sandboxes::stop(engine, &id)).await?;
        Ok(Response::new(StopPodSandboxResponse {}))
    }

    async fn remove_pod_sandbox(
        &self,
        request: Request<RemovePodSandboxRequest>,
    ) -> Result<Response<RemovePodSandboxResponse>, Status> {
        let id = request.into_inner().pod_sandbox_id;
        let engine = &self.shared.engine;
        self.shared.call(sandboxes::remove(engine, &id)).await?;
        Ok(Response::new(RemovePodSandboxResponse {}))
    }

    async fn pod_sandbox_status(
        &self,
        request: Request<PodSandboxStatusRequest>,
    ) -> Result<Response<PodSandboxStatusResponse>, Status> {
        let id = request.into_inner().pod_sandbox_id;
        let engine = &self.shared.engine;
        let status = self.shared.call(sandboxes::status(engine, &id)).await?;
        Ok(Response::new(PodSandboxStatusResponse {
            status: Some(status),
            ..PodSandboxStatusResponse::default()
        }))
    }

    async fn list_pod_sandbox(
        &self,
        request: Request<ListPodSandboxRequest>,
    ) -> Result<Response<ListPodSandboxResponse>, Status> {
        let filter = request.into_inner().filter;
        let engine = &self.shared.engine;
        let items = self
            .shared
            .call(async { sandboxes::list(engine, filter) })
            .await?;
        Ok(Response::new(ListPodSandboxResponse { items }))
    }

    async fn create_container(
        &self,
        request: Request<CreateContainerRequest>,
    ) -> Result<Response<CreateContainerResponse>, Status> {
        let request = request.into_inner();
        let config = request
            .config
            .ok_or_else(|| Status::invalid_argument("the request has no config"))?;
        let engine = self.shared.engine.clone();
        let id = self
            .shared
            .call(containers::create(engine, request.pod_sandbox_id, config))
            .await?;
        Ok(Response::new(CreateContainerResponse { container_id: id }))
    }

    async fn start_container(
        &self,
        request: Request<StartContainerRequest>,
    ) -> Result<Response<StartContainerResponse>, Status> {
        let id = request.into_inner().container_id;
        let engine = &self.shared.engine;
        self.shared.call(containers::start(engine, &id)).await?;
        Ok(Response::new(StartContainerResponse {}))
    }

    async fn stop_container(
        &self,
        request: Request<StopContainerRequest>,
    ) -> Result<Response<StopContainerResponse>, Status> {
        let request = request.into_inner();
        let timeout = Duration::from_secs(request.timeout.max(0) as u64);
        let engine = &self.shared.engine;
        let stopped = containers::stop(engine, &request.container_id, timeout);
        self.shared.call(stopped).await?;
        Ok(Response::new(StopContainerResponse {}))
    }

    async fn remove_container(
        &self,
        request: Request<RemoveContainerRequest>,
    ) -> Result<Response<RemoveContainerResponse>, Status> {
        let id = request.into_inner().container_id;
        let engine = &self.shared.engine;
        self.shared.call(containers::remove(engine, &id)).await?;
        Ok(Response::new(RemoveContainerResponse {}))
    }

    async fn list_containers(
        &self,
        request: Request<ListContainersRequest>,
    ) -> Result<Response<ListContainersResponse>, Status> {
        let filter = request.into_inner().filter;
        let engine = &self.shared.engine;
        let containers = self.shared.call(containers::list(engine, filter)).await?;
        Ok(Response::new(ListContainersResponse { containers }))
    }

    async fn container_status(
        &self,
        request: Request<ContainerStatusRequest>,
    ) -> Result<Response<ContainerStatusResponse>, Status> {
        let id = request.into_inner().container_id;
        let engine = &self.shared.engine;
        let status = self.shared.call(containers::status(engine, &id)).await?;
        Ok(Response::new(ContainerStatusResponse {
            status: Some(status),
            ..ContainerStatusResponse::default()
        }))
    }

    async fn update_container_resources(
        &self,
        request: Request<UpdateContainerResourcesRequest>,
    ) -> Result<Response<UpdateContainerResourcesResponse>, Status> {
        let request = request.into_inner();
        let engine = &self.shared.engine;
        let updated = containers::update(engine, &request.container_id, request.linux);
        self.shared.call(updated).await?;
        Ok(Response::new(UpdateContainerResourcesResponse {}))
    }

    async fn reopen_container_log(
        &self,
        request: Request<ReopenContainerLogRequest>,
    ) -> Result<Response<ReopenContainerLogResponse>, Status> {
        let id = request.into_inner().container_id;
        let engine = &self.shared.engine;
        self.shared
            .call(containers::reopen_log(engine, &id))
            .await?;
        Ok(Response::new(ReopenContainerLogResponse {}))
    }

    async fn exec_sync(
        &self,
        request: Request<ExecSyncRequest>,
    ) -> Result<Response<ExecSyncResponse>, Status> {
        let request = request.into_inner();
        let timeout = Duration::from_secs(request.timeout.max(0) as u64);
        let engine = &self.shared.engine;
        let ran = containers::exec_sync(engine, &request.container_id, request.cmd, timeout);
        Ok(Response::new(self.shared.call(ran).await?))
    }

    async fn container_stats(
        &self,
        request: Request<ContainerStatsRequest>,
    ) -> Result<Response<ContainerStatsResponse>, Status> {
        let id = request.into_inner().container_id;
        let engine = &self.shared.engine;
        let stats = self.shared.call(containers::stats(engine, &id)).await?;
        Ok(Response::new(ContainerStatsResponse { stats: Some(stats) }))
    }

    async fn list_container_stats(
        &self,
        request: Request<ListContainerStatsRequest>,
    ) -> Result<Response<ListContainerStatsResponse>, Status> {
        let filter = request.into_inner().filter;
        let engine = &self.shared.engine;
        let stats = self
            .shared
            .call(containers::list_stats(engine, filter))
            .await?;
        Ok(Response::new(ListContainerStatsResponse { stats }))
    }

    /// Exec: a URL on the streaming server.
    async fn exec(&self, request: Request<ExecRequest>) -> Result<Response<ExecResponse>, Status> {
        let request = request.into_inner();
        if request.tty && request.stderr {
            return Err(Status::invalid_argument(
                "tty and stderr cannot both be true: a terminal has one output",
            ));
        }
        if !(request.stdout || request.stderr || request.stdin) {
            return Err(Status::invalid_argument(
                "one of stdin, stdout and stderr must be asked for",
            ));
        }
        let streaming = &self.shared.streaming;
        let url = streaming
            .exec_url(
                &request.container_id,
                request.cmd,
                request.stdin,
                request.tty,
            )
            .map_err(|e| crate::status::of(&e))?;
        Ok(Response::new(ExecResponse { url }))
    }

    /// Attach: a URL on the streaming server. Whether it has a terminal is the container's
    /// (its `tty` at creation), whatever the request says, as containerd's.
    async fn attach(
        &self,
        request: Request<AttachRequest>,
    ) -> Result<Response<AttachResponse>, Status> {
        let request = request.into_inner();
        let streaming = &self.shared.streaming;
        let url = streaming
            .attach_url(&request.container_id, request.stdin)
            .map_err(|e| crate::status::of(&e))?;
        Ok(Response::new(AttachResponse { url }))
    }
}
