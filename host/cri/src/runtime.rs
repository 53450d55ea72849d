//! The CRI runtime service: what the runtime is (`Version`), whether it and its network are
//! ready (`Status`) and its cgroup driver (`RuntimeConfig`). Sandboxes and containers are
//! still `Unimplemented`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::Shared;
use crate::api::runtime_service_server::RuntimeService;
use crate::api::{
    CgroupDriver, LinuxRuntimeConfiguration, RuntimeCondition, RuntimeConfigRequest,
    RuntimeConfigResponse, RuntimeStatus, StatusRequest, StatusResponse, VersionRequest,
    VersionResponse,
};

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
        Ok(Response::new(StatusResponse {
            status: Some(RuntimeStatus {
                conditions: vec![
                    condition("RuntimeReady", runtime),
                    condition("NetworkReady", network),
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
}
