//! What Docker reports, in berth's vocabulary: container state and info, and stats.

use std::collections::BTreeMap;

use berth_core::{ContainerInfo, ContainerState, ContainerStats, Limits};
use bollard::models::{
    ContainerBlkioStatEntry, ContainerInspectResponse, ContainerStateStatusEnum,
    ContainerStatsResponse,
};
use chrono::{DateTime, Utc};

use crate::create::{ID_LABEL, VPC_NETWORK};

/// sysinner's state mapping: a paused container still runs, a created one is starting (and
/// one between restarts is restarting).
pub fn state(status: Option<ContainerStateStatusEnum>) -> ContainerState {
    use ContainerStateStatusEnum as S;
    match status {
        Some(S::RUNNING | S::PAUSED) => ContainerState::Running,
        Some(S::RESTARTING) => ContainerState::Restarting,
        Some(S::CREATED) => ContainerState::Starting,
        Some(S::EXITED | S::DEAD | S::REMOVING | S::STOPPING) => ContainerState::Stopped,
        Some(S::EMPTY) | None => ContainerState::Dead,
    }
}

fn time(text: Option<&str>) -> Option<DateTime<Utc>> {
    let at = DateTime::parse_from_rfc3339(text?)
        .ok()?
        .with_timezone(&Utc);
    // Docker reports "never" as the zero time.
    (at.timestamp() > 0).then_some(at)
}

/// Info for `inspect`; `id` is berth's id, `backend` the configured backend name.
pub fn container_info(id: &str, backend: &str, c: &ContainerInspectResponse) -> ContainerInfo {
    let config = c.config.as_ref();
    let mut labels: BTreeMap<String, String> = config
        .and_then(|c| c.labels.clone())
        .unwrap_or_default()
        .into_iter()
        .collect();
    labels.remove(ID_LABEL);
    labels.remove(berth_core::STORE_LABEL);
    let docker_state = c.state.as_ref();
    let state = state(docker_state.and_then(|s| s.status));
    let host = c.host_config.as_ref();
    // The VPC network's address wins, as the driver reports it.
    let networks = c
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref());
    let ip_address = networks
        .and_then(|n| n.get(VPC_NETWORK).or_else(|| n.values().next()))
        .and_then(|e| e.ip_address.clone())
        .filter(|ip| !ip.is_empty());
    ContainerInfo {
        id: id.to_string(),
        name: c
            .name
            .as_deref()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        image: config.and_then(|c| c.image.clone()).unwrap_or_default(),
        state,
        pid: docker_state
            .and_then(|s| s.pid)
            .filter(|p| *p > 0 && state == ContainerState::Running)
            .map(|p| p as u32),
        exit_code: docker_state
            .and_then(|s| s.exit_code)
            .filter(|_| state == ContainerState::Stopped)
            .map(|c| c as i32),
        created: c
            .created
            .as_deref()
            .and_then(|t| time(Some(t)))
            .unwrap_or_else(Utc::now),
        started: time(docker_state.and_then(|s| s.started_at.as_deref())),
        finished: time(docker_state.and_then(|s| s.finished_at.as_deref()))
            .filter(|_| state == ContainerState::Stopped),
        labels,
        backend: backend.to_string(),
        status_detail: docker_state
            .and_then(|s| s.error.clone())
            .filter(|e| !e.is_empty()),
        ip_address,
        networks: Vec::new(),
        ports: Vec::new(),
        limits: host.map(|h| Limits {
            cpu_millis: h.nano_cpus.filter(|n| *n > 0).map(|n| n as u64 / 1_000_000),
            memory_bytes: h.memory.filter(|m| *m > 0).map(|m| m as u64),
            pids: h.pids_limit.filter(|p| *p > 0).map(|p| p as u64),
        }),
        restart_count: c.restart_count.unwrap_or(0).max(0) as u32,
    }
}

/// Sums blkio entries whose op matches, ignoring case: cgroup v1 says `Read`, v2 says `read`.
fn blkio(entries: Option<&Vec<ContainerBlkioStatEntry>>, op: &str) -> u64 {
    entries
        .into_iter()
        .flatten()
        .filter(|e| e.op.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(op)))
        .filter_map(|e| e.value)
        .sum()
}

pub fn stats(s: &ContainerStatsResponse) -> ContainerStats {
    let memory = s.memory_stats.as_ref();
    let memory_stats = memory.and_then(|m| m.stats.as_ref());
    // cgroup v1 counts page cache as `cache`, v2 as `file`.
    let cache = memory_stats
        .and_then(|m| m.get("cache").or_else(|| m.get("file")))
        .copied()
        .unwrap_or(0);
    let networks = s.networks.as_ref();
    let net = |pick: fn(&bollard::models::ContainerNetworkStats) -> Option<u64>| {
        networks
            .into_iter()
            .flat_map(|n| n.values())
            .filter_map(pick)
            .sum()
    };
    let blk = s.blkio_stats.as_ref();
    let bytes = blk.and_then(|b| b.io_service_bytes_recursive.as_ref());
    let ops = blk.and_then(|b| b.io_serviced_recursive.as_ref());
    ContainerStats {
        cpu_total_ns: s
            .cpu_stats
            .as_ref()
            .and_then(|c| c.cpu_usage.as_ref())
            .and_then(|u| u.total_usage)
            .unwrap_or(0),
        memory_usage_bytes: memory.and_then(|m| m.usage).unwrap_or(0),
        memory_cache_bytes: cache,
        net_rx_bytes: net(|n| n.rx_bytes),
        net_tx_bytes: net(|n| n.tx_bytes),
        block_read_bytes: blkio(bytes, "read"),
        block_write_bytes: blkio(bytes, "write"),
        block_read_ops: blkio(ops, "read"),
        block_write_ops: blkio(ops, "write"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_map_as_the_driver_does() {
        use ContainerStateStatusEnum as S;
        assert_eq!(state(Some(S::RUNNING)), ContainerState::Running);
        assert_eq!(state(Some(S::PAUSED)), ContainerState::Running);
        assert_eq!(state(Some(S::EXITED)), ContainerState::Stopped);
        assert_eq!(state(Some(S::DEAD)), ContainerState::Stopped);
        assert_eq!(state(Some(S::CREATED)), ContainerState::Starting);
    }

    #[test]
    fn stats_match_blkio_ops_in_any_case_and_sum_networks() {
        let json = serde_json::json!({
            "cpu_stats": {"cpu_usage": {"total_usage": 123}},
            "memory_stats": {"usage": 1000, "stats": {"file": 300}},
            "networks": {"eth0": {"rx_bytes": 10, "tx_bytes": 1}, "eth1": {"rx_bytes": 5, "tx_bytes": 2}},
            "blkio_stats": {
                "io_service_bytes_recursive": [
                    {"major": 8, "minor": 0, "op": "read", "value": 4096},
                    {"major": 8, "minor": 0, "op": "Write", "value": 8192},
                    {"major": 8, "minor": 16, "op": "WRITE", "value": 1},
                ],
                "io_serviced_recursive": [
                    {"major": 8, "minor": 0, "op": "Read", "value": 2},
                    {"major": 8, "minor": 0, "op": "write", "value": 3},
                ],
            },
        });
        let s: ContainerStatsResponse = serde_json::from_value(json).unwrap();
        assert_eq!(
            stats(&s),
            ContainerStats {
                cpu_total_ns: 123,
                memory_usage_bytes: 1000,
                memory_cache_bytes: 300,
                net_rx_bytes: 15,
                net_tx_bytes: 3,
                block_read_bytes: 4096,
                block_write_bytes: 8193,
                block_read_ops: 2,
                block_write_ops: 3,
            }
        );
    }
}
