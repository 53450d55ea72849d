//! CRI containers are the apps of their sandbox's pod: CreateContainer runs berth's create
//! pipeline (name and backend policy, pre-create hooks and their patches) with the pod's
//! namespaces joined and the output also written at the kubelet's log path in the CRI's
//! format; Start, Stop and Remove are berth's, with Stop and Remove idempotent. Only
//! containers carrying [`CONTAINER_LABEL`] are the CRI's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use berth_core::{
    CapturedOutput, ContainerInfo, ContainerSpec, ContainerState as State, Error, ErrorKind,
    ExecIo, ExecSpec, ExecStreams, Limits, Mount, Object, RemoveOptions, Result, StopOptions,
};
use berth_engine::{ContainerRecord, CreateOptions, Engine, Phase};

use crate::api::{
    Container, ContainerAttributes, ContainerConfig, ContainerFilter, ContainerMetadata,
    ContainerState, ContainerStats, ContainerStatsFilter, ContainerStatus, CpuUsage,
    ExecSyncResponse, FilesystemIdentifier, FilesystemUsage, ImageSpec, LinuxContainerResources,
    MemoryUsage, UInt64Value,
};
use crate::meta::{self, CONTAINER_LABEL, ContainerMeta};
use crate::sandboxes;

/// CreateContainer: the app, created in its sandbox's pod; its id.
pub async fn create(
    engine: Arc<Engine>,
    sandbox_id: String,
    config: ContainerConfig,
) -> Result<String> {
    let (pod, sandbox) = sandboxes::get(&engine, &sandbox_id)?;
    let metadata = config
        .metadata
        .clone()
        .ok_or_else(|| meta::missing("config.metadata"))?;
    let image = config
        .image
        .as_ref()
        .map(|i| i.image.clone())
        .filter(|i| !i.is_empty())
        .ok_or_else(|| meta::missing("config.image.image"))?;
    let log_path = match (&config.log_path, sandbox.log_directory.as_str()) {
        (path, _) if path.is_empty() => None,
        (path, "") => Some(std::path::PathBuf::from(path)),
        (path, dir) => Some(std::path::Path::new(dir).join(path)),
    };
    let container = ContainerMeta {
        sandbox: pod.id.clone(),
        name: metadata.name,
        attempt: metadata.attempt,
        image: image.clone(),
        annotations: config.annotations.clone().into_iter().collect(),
        log_path: log_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    };
    let (name, app) = meta::container_names(&container, &pod.name);
    let resources = config
        .linux
        .as_ref()
        .and_then(|l| l.resources.clone())
        .unwrap_or_default();
    let spec = ContainerSpec {
        name,
        image,
        // The kubelet's command replaces the image's entrypoint, its args the image's cmd.
        entrypoint: (!config.command.is_empty()).then(|| config.command.clone()),
        command: config.args.clone(),
        env: config
            .envs
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect(),
        labels: meta::labels_with(&config.labels, CONTAINER_LABEL, &container),
        mounts: config
            .mounts
            .iter()
            .map(|m| Mount {
                source: m.host_path.clone(),
                target: m.container_path.clone(),
                readonly: m.readonly,
                owner: None,
            })
            .collect(),
        limits: limits(&resources),
        working_dir: Some(config.working_dir.clone()).filter(|d| !d.is_empty()),
        pod: Some(pod.id.clone()),
        log_path,
        stdin_open: config.stdin,
        stdin_once: config.stdin_once,
        tty: config.tty,
        ..ContainerSpec::default()
    };
    let options = CreateOptions {
        app: Some(app),
        ..CreateOptions::default()
    };
    Ok(engine.create(spec, options).await?.id)
}

/// The limits a kubelet's resources ask for (CPU from quota and period).
fn limits(resources: &LinuxContainerResources) -> Limits {
    let cpu_millis = (resources.cpu_quota > 0 && resources.cpu_period > 0)
        .then(|| (resources.cpu_quota as u64 * 1000).div_ceil(resources.cpu_period as u64));
    Limits {
        cpu_millis,
        memory_bytes: (resources.memory_limit_in_bytes > 0)
            .then_some(resources.memory_limit_in_bytes as u64),
        pids: None,
    }
}

/// The CRI's container `id` (exact or a unique prefix), or `None` when there is none.
pub fn find(engine: &Engine, id: &str) -> Result<Option<(ContainerRecord, ContainerMeta)>> {
    if id.is_empty() {
        return Err(meta::missing("container_id"));
    }
    let record = match engine.resolve(id) {
        Ok(record) => record,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !record.id.starts_with(id) {
        return Ok(None);
    }
    Ok(meta::read(&record.spec.labels, CONTAINER_LABEL).map(|m| (record, m)))
}

/// The container `id`, which must exist.
pub fn get(engine: &Engine, id: &str) -> Result<(ContainerRecord, ContainerMeta)> {
    find(engine, id)?
        .ok_or_else(|| Error::not_found(Object::Container, id).with_hint("see `crictl ps -a`"))
}

pub async fn start(engine: &Arc<Engine>, id: &str) -> Result<()> {
    let (record, _) = get(engine, id)?;
    engine.start(&record).await
}

/// StopContainer: SIGTERM, then SIGKILL once `timeout` has passed. A stopped or missing
/// container is done.
pub async fn stop(engine: &Arc<Engine>, id: &str, timeout: Duration) -> Result<()> {
    let Some((record, _)) = find(engine, id)? else {
        return Ok(());
    };
    if !engine.info(&record).await.state.is_running() {
        return Ok(());
    }
    let options = StopOptions {
        signal: libc::SIGTERM,
        timeout,
        force: true,
    };
    engine.stop(&record, &options).await
}

/// RemoveContainer: killed if it runs, then removed. A missing container is done.
pub async fn remove(engine: &Arc<Engine>, id: &str) -> Result<()> {
    let Some((record, _)) = find(engine, id)? else {
        return Ok(());
    };
    match engine.remove(&record, RemoveOptions::forced()).await {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn state(info: &ContainerInfo) -> ContainerState {
    match info.state {
        State::Created => ContainerState::ContainerCreated,
        State::Starting | State::Running => ContainerState::ContainerRunning,
        // The kubelet restarts containers itself; one between restarts has exited.
        State::Stopped | State::Restarting => ContainerState::ContainerExited,
        State::Dead => ContainerState::ContainerUnknown,
    }
}

fn nanos(time: Option<chrono::DateTime<chrono::Utc>>) -> i64 {
    time.and_then(|t| t.timestamp_nanos_opt()).unwrap_or(0)
}

fn metadata(meta: &ContainerMeta) -> ContainerMetadata {
    ContainerMetadata {
        name: meta.name.clone(),
        attempt: meta.attempt,
    }
}

fn annotations(meta: &ContainerMeta) -> HashMap<String, String> {
    meta.annotations.clone().into_iter().collect()
}

fn image(meta: &ContainerMeta) -> ImageSpec {
    ImageSpec {
        image: meta.image.clone(),
        ..ImageSpec::default()
    }
}

/// ContainerStatus.
pub async fn status(engine: &Engine, id: &str) -> Result<ContainerStatus> {
    let (record, container) = get(engine, id)?;
    let info = engine.info(&record).await;
    let state = state(&info);
    let (reason, message) = match (state, info.exit_code) {
        (ContainerState::ContainerExited, Some(0)) => ("Completed", String::new()),
        (ContainerState::ContainerExited, _) => ("Error", String::new()),
        (ContainerState::ContainerUnknown, _) => {
            ("Unknown", info.status_detail.clone().unwrap_or_default())
        }
        _ => ("", String::new()),
    };
    Ok(ContainerStatus {
        id: record.id.clone(),
        metadata: Some(metadata(&container)),
        state: state.into(),
        created_at: nanos(Some(record.created)),
        started_at: nanos(info.started),
        finished_at: nanos(info.finished),
        exit_code: info.exit_code.unwrap_or(0),
        image: Some(image(&container)),
        image_ref: info.image.clone(),
        reason: reason.into(),
        message,
        labels: meta::kubelet_labels(&record.spec.labels),
        annotations: annotations(&container),
        mounts: record
            .spec
            .mounts
            .iter()
            .map(|m| crate::api::Mount {
                container_path: m.target.clone(),
                host_path: m.source.clone(),
                readonly: m.readonly,
                ..crate::api::Mount::default()
            })
            .collect(),
        log_path: container.log_path.clone(),
        ..ContainerStatus::default()
    })
}

/// The CRI's containers whose id starts with `id`, in a sandbox whose id starts with `sandbox`
/// (empty: any), carrying every label of `labels`; with their state.
async fn each(
    engine: &Engine,
    id: &str,
    sandbox: &str,
    labels: &HashMap<String, String>,
) -> Result<Vec<(ContainerRecord, ContainerMeta, ContainerInfo)>> {
    let mut found = Vec::new();
    for record in engine.records()? {
        if record.phase != Phase::Created || !record.id.starts_with(id) {
            continue;
        }
        let Some(container) = meta::read::<ContainerMeta>(&record.spec.labels, CONTAINER_LABEL)
        else {
            continue;
        };
        let own = meta::kubelet_labels(&record.spec.labels);
        let chosen = (sandbox.is_empty() || container.sandbox.starts_with(sandbox))
            && labels.iter().all(|(k, v)| own.get(k) == Some(v));
        if chosen {
            let info = engine.info(&record).await;
            found.push((record, container, info));
        }
    }
    Ok(found)
}

/// ListContainers, filtered by id (prefix), sandbox, state and labels.
pub async fn list(engine: &Engine, filter: Option<ContainerFilter>) -> Result<Vec<Container>> {
    let filter = filter.unwrap_or_default();
    let found = each(
        engine,
        &filter.id,
        &filter.pod_sandbox_id,
        &filter.label_selector,
    )
    .await?;
    Ok(found
        .into_iter()
        .filter(|(_, _, info)| {
            filter
                .state
                .as_ref()
                .is_none_or(|s| s.state == state(info) as i32)
        })
        .map(|(record, container, info)| Container {
            id: record.id.clone(),
            pod_sandbox_id: container.sandbox.clone(),
            metadata: Some(metadata(&container)),
            image: Some(image(&container)),
            image_ref: info.image.clone(),
            state: state(&info).into(),
            created_at: nanos(Some(record.created)),
            labels: meta::kubelet_labels(&record.spec.labels),
            annotations: annotations(&container),
        })
        .collect())
}

/// How much of each of an ExecSync's outputs is kept: both together stay under the 16 MiB a
/// kubelet's client takes in one message.
const EXEC_SYNC_OUTPUT: usize = 8 << 20;

/// ExecSync: the command's output, captured (8 MiB of each at most), and its exit code; past `timeout` (when not zero)
/// it is killed and the call fails as timed out.
pub async fn exec_sync(
    engine: &Engine,
    id: &str,
    command: Vec<String>,
    timeout: Duration,
) -> Result<ExecSyncResponse> {
    let (record, _) = get(engine, id)?;
    if command.is_empty() {
        return Err(meta::missing("cmd"));
    }
    let spec = ExecSpec {
        command,
        timeout: (!timeout.is_zero()).then_some(timeout),
        ..ExecSpec::default()
    };
    let (stdout, stderr) = (
        CapturedOutput::capped(EXEC_SYNC_OUTPUT),
        CapturedOutput::capped(EXEC_SYNC_OUTPUT),
    );
    let io = ExecIo::Streams(ExecStreams::output(stdout.clone(), stderr.clone()));
    let exit_code = engine.exec(&record, &spec, io).await?;
    Ok(ExecSyncResponse {
        stdout: stdout.bytes(),
        stderr: stderr.bytes(),
        exit_code,
    })
}

/// UpdateContainerResources: the CPU and memory limits of a running container, in place.
pub async fn update(
    engine: &Engine,
    id: &str,
    resources: Option<LinuxContainerResources>,
) -> Result<()> {
    let (record, _) = get(engine, id)?;
    let limits = limits(&resources.unwrap_or_default());
    if limits == Limits::default() {
        return Ok(()); // nothing berth applies was asked for
    }
    engine.update_limits(&record, &limits).await
}

/// ReopenContainerLog: the kubelet moved the log away; a new file is made at its path, which
/// the container's log writer finds and writes from its next line on.
pub async fn reopen_log(engine: &Engine, id: &str) -> Result<()> {
    let (record, container) = get(engine, id)?;
    if !engine.info(&record).await.state.is_running() {
        return Err(Error::conflict(
            format!("container {id}"),
            "it is not running, so it writes no log",
        ));
    }
    if container.log_path.is_empty() {
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&container.log_path)
        .map(drop)
        .map_err(|e| Error::io(format!("reopening {}", container.log_path), e))
}

fn value(value: u64) -> Option<UInt64Value> {
    Some(UInt64Value { value })
}

async fn stats_of(
    engine: &Engine,
    record: &ContainerRecord,
    container: &ContainerMeta,
) -> Result<ContainerStats> {
    let figures = engine.stats(record).await?;
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    let working_set = figures
        .memory_usage_bytes
        .saturating_sub(figures.memory_cache_bytes);
    Ok(ContainerStats {
        attributes: Some(ContainerAttributes {
            id: record.id.clone(),
            metadata: Some(metadata(container)),
            labels: meta::kubelet_labels(&record.spec.labels),
            annotations: annotations(container),
        }),
        cpu: Some(CpuUsage {
            timestamp: now,
            usage_core_nano_seconds: value(figures.cpu_total_ns),
            ..CpuUsage::default()
        }),
        memory: Some(MemoryUsage {
            timestamp: now,
            working_set_bytes: value(working_set),
            usage_bytes: value(figures.memory_usage_bytes),
            ..MemoryUsage::default()
        }),
        writable_layer: Some(FilesystemUsage {
            timestamp: now,
            fs_id: Some(FilesystemIdentifier {
                mountpoint: engine.config.host.state_dir.display().to_string(),
            }),
            used_bytes: value(0),
            inodes_used: value(0),
        }),
    })
}

/// ContainerStats.
pub async fn stats(engine: &Engine, id: &str) -> Result<ContainerStats> {
    let (record, container) = get(engine, id)?;
    stats_of(engine, &record, &container).await
}

/// ListContainerStats: the running containers that pass the filter.
pub async fn list_stats(
    engine: &Engine,
    filter: Option<ContainerStatsFilter>,
) -> Result<Vec<ContainerStats>> {
    let filter = filter.unwrap_or_default();
    let found = each(
        engine,
        &filter.id,
        &filter.pod_sandbox_id,
        &filter.label_selector,
    )
    .await?;
    let mut stats = Vec::new();
    for (record, container, info) in found {
        if info.state.is_running() {
            stats.push(stats_of(engine, &record, &container).await?);
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_quota_over_period_and_the_memory_limit() {
        let resources = LinuxContainerResources {
            cpu_quota: 50_000,
            cpu_period: 100_000,
            memory_limit_in_bytes: 64 << 20,
            ..LinuxContainerResources::default()
        };
        let limits = limits(&resources);
        assert_eq!(limits.cpu_millis, Some(500));
        assert_eq!(limits.memory_bytes, Some(64 << 20));
        assert_eq!(
            super::limits(&LinuxContainerResources::default()),
            Limits::default()
        );
    }
}
