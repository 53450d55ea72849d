//! Pod sandboxes are berth pods: RunPodSandbox creates and starts one (its infra process, its
//! network, the name and backend policies and the pod hooks), Stop stops it, Remove removes it
//! with its containers. Only pods carrying [`SANDBOX_LABEL`] are the CRI's; berth's own pods
//! stay out of the kubelet's sight (it would garbage-collect them).

use std::collections::HashMap;
use std::time::Duration;

use berth_core::{Error, ErrorKind, Object, PortMapping, Result};
use berth_engine::Engine;
use berth_engine::pods::{PodPhase, PodRecord, PodSpec};

use crate::api::{
    LinuxPodSandboxStatus, Namespace, NamespaceMode, NamespaceOption, PodSandbox, PodSandboxConfig,
    PodSandboxFilter, PodSandboxMetadata, PodSandboxNetworkStatus, PodSandboxState,
    PodSandboxStatus, Protocol,
};
use crate::meta::{self, SANDBOX_LABEL, SandboxMeta};

/// How long a sandbox's apps get to stop before they are killed (the kubelet stops each
/// container with its own grace period first).
const STOP_GRACE: Duration = Duration::from_secs(10);

/// RunPodSandbox: the pod, created and started; its id.
pub async fn run(
    engine: std::sync::Arc<Engine>,
    config: PodSandboxConfig,
    handler: String,
) -> Result<String> {
    let metadata = config
        .metadata
        .clone()
        .ok_or_else(|| meta::missing("config.metadata"))?;
    let linux = config.linux.clone().unwrap_or_default();
    let namespaces = linux
        .security_context
        .and_then(|s| s.namespace_options)
        .unwrap_or_default();
    if namespaces.network == NamespaceMode::Node as i32 {
        return Err(Error::NotSupported {
            backend: "cri".into(),
            operation: "a sandbox on the host's network (hostNetwork)".into(),
            hint: "berth's pods have a network namespace of their own".into(),
        });
    }
    let sandbox = SandboxMeta {
        name: metadata.name,
        uid: metadata.uid,
        namespace: metadata.namespace,
        attempt: metadata.attempt,
        annotations: config.annotations.into_iter().collect(),
        log_directory: config.log_directory,
        runtime_handler: handler,
        pid_mode: namespaces.pid,
    };
    let dns = config.dns_config.unwrap_or_default();
    let spec = PodSpec {
        name: meta::sandbox_name(&sandbox),
        labels: meta::labels_with(&config.labels, SANDBOX_LABEL, &sandbox),
        hostname: Some(config.hostname).filter(|h| !h.is_empty()),
        ports: config
            .port_mappings
            .iter()
            .filter(|p| p.host_port > 0)
            .map(port)
            .collect::<Result<_>>()?,
        dns: dns.servers,
        dns_search: dns.searches,
        dns_options: dns.options,
        share_pid: namespaces.pid == NamespaceMode::Pod as i32,
        sysctls: linux.sysctls.into_iter().collect(),
        ..PodSpec::default()
    };
    Ok(engine.create_pod(spec).await?.id)
}

fn port(mapping: &crate::api::PortMapping) -> Result<PortMapping> {
    let number = |n: i32, what: &str| {
        u16::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
            Error::invalid(
                format!("port mapping {what} {n}"),
                "it is not a port (1-65535)",
            )
        })
    };
    let protocol = match Protocol::try_from(mapping.protocol) {
        Ok(Protocol::Tcp) => "tcp",
        Ok(Protocol::Udp) => "udp",
        Ok(Protocol::Sctp) => "sctp",
        Err(_) => return Err(Error::invalid("port mapping protocol", "it is unknown")),
    };
    Ok(PortMapping {
        container_port: number(mapping.container_port, "container port")?,
        protocol: protocol.into(),
        host_port: Some(number(mapping.host_port, "host port")?),
        host_ip: Some(mapping.host_ip.clone()).filter(|ip| !ip.is_empty()),
    })
}

/// The CRI's pod `id` (exact), or `None` when there is none (Stop and Remove are then done).
pub fn find(engine: &Engine, id: &str) -> Result<Option<(PodRecord, SandboxMeta)>> {
    if id.is_empty() {
        return Err(meta::missing("pod_sandbox_id"));
    }
    let found = match engine.resolve_pod(id) {
        Ok(pod) => pod,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(meta::read(&found.spec.labels, SANDBOX_LABEL)
        .filter(|_| found.id == id || found.id.starts_with(id))
        .map(|m| (found, m)))
}

/// The pod `id`, which must exist.
pub fn get(engine: &Engine, id: &str) -> Result<(PodRecord, SandboxMeta)> {
    find(engine, id)?
        .ok_or_else(|| Error::not_found(Object::Pod, id).with_hint("see `crictl pods`"))
}

/// StopPodSandbox: its apps stopped (killed after a grace period), then its infra process and
/// network. Stopping a stopped or missing sandbox is done.
pub async fn stop(engine: &std::sync::Arc<Engine>, id: &str) -> Result<()> {
    let Some((pod, _)) = find(engine, id)? else {
        return Ok(());
    };
    if matches!(pod.phase, PodPhase::Exited | PodPhase::Prepared) && !engine.pod_running(&pod) {
        return Ok(());
    }
    engine.stop_pod(&pod, STOP_GRACE, true).await
}

/// RemovePodSandbox: the pod and every container in it. Removing a missing one is done.
pub async fn remove(engine: &std::sync::Arc<Engine>, id: &str) -> Result<()> {
    let Some((pod, _)) = find(engine, id)? else {
        return Ok(());
    };
    match engine.remove_pod(&pod, true).await {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn state(engine: &Engine, pod: &PodRecord) -> PodSandboxState {
    if pod.phase == PodPhase::Created && engine.pod_running(pod) {
        PodSandboxState::SandboxReady
    } else {
        PodSandboxState::SandboxNotready
    }
}

fn metadata(meta: &SandboxMeta) -> PodSandboxMetadata {
    PodSandboxMetadata {
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        namespace: meta.namespace.clone(),
        attempt: meta.attempt,
    }
}

fn nanos(time: chrono::DateTime<chrono::Utc>) -> i64 {
    time.timestamp_nanos_opt().unwrap_or(0)
}

fn annotations(meta: &SandboxMeta) -> HashMap<String, String> {
    meta.annotations.clone().into_iter().collect()
}

/// PodSandboxStatus.
pub async fn status(engine: &Engine, id: &str) -> Result<PodSandboxStatus> {
    let (pod, sandbox) = get(engine, id)?;
    let info = engine.pod_info(&pod).await;
    let ip = info
        .networks
        .iter()
        .filter_map(|n| n.address.as_deref())
        .map(|cidr| cidr.split('/').next().unwrap_or(cidr).to_string())
        .next()
        .unwrap_or_default();
    let pid = if pod.spec.share_pid {
        NamespaceMode::Pod
    } else {
        NamespaceMode::Container
    };
    Ok(PodSandboxStatus {
        id: pod.id.clone(),
        metadata: Some(metadata(&sandbox)),
        state: state(engine, &pod).into(),
        created_at: nanos(pod.created),
        network: Some(PodSandboxNetworkStatus {
            ip,
            additional_ips: Vec::new(),
        }),
        linux: Some(LinuxPodSandboxStatus {
            namespaces: Some(Namespace {
                options: Some(NamespaceOption {
                    network: NamespaceMode::Pod.into(),
                    pid: pid.into(),
                    ipc: NamespaceMode::Pod.into(),
                    ..NamespaceOption::default()
                }),
            }),
        }),
        labels: meta::kubelet_labels(&pod.spec.labels),
        annotations: annotations(&sandbox),
        runtime_handler: sandbox.runtime_handler,
    })
}

/// ListPodSandbox, filtered by id (prefix), state and labels.
pub fn list(engine: &Engine, filter: Option<PodSandboxFilter>) -> Result<Vec<PodSandbox>> {
    let filter = filter.unwrap_or_default();
    let mut sandboxes = Vec::new();
    for pod in engine.pods()? {
        let Some(sandbox) = meta::read::<SandboxMeta>(&pod.spec.labels, SANDBOX_LABEL) else {
            continue;
        };
        if !filter.id.is_empty() && !pod.id.starts_with(&filter.id) {
            continue;
        }
        let state = state(engine, &pod);
        if filter
            .state
            .as_ref()
            .is_some_and(|s| s.state != state as i32)
        {
            continue;
        }
        let labels = meta::kubelet_labels(&pod.spec.labels);
        if !filter
            .label_selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
        {
            continue;
        }
        sandboxes.push(PodSandbox {
            id: pod.id.clone(),
            metadata: Some(metadata(&sandbox)),
            state: state.into(),
            created_at: nanos(pod.created),
            labels,
            annotations: annotations(&sandbox),
            runtime_handler: sandbox.runtime_handler,
        });
    }
    Ok(sandboxes)
}
