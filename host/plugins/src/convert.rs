//! berth's domain types to and from their WIT twins (the current ABI's; a 0.1.0 component's are
//! converted from these in `interfaces::types`). The WIT side uses sorted key/value lists where
//! berth uses maps, so a plugin sees env and labels in a stable order.

use berth_core::pod::{PodApp, PodSpec};
use berth_core::{BackendInfo, ContainerSpec, HostEntry, Limits, Mount, PortMapping};

use crate::hook::Hook;
use crate::interfaces::types::wit;
use crate::patch::{Dns, Patch};

fn pairs<'a>(map: impl IntoIterator<Item = (&'a String, &'a String)>) -> Vec<(String, String)> {
    map.into_iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn mount(m: &Mount) -> wit::Mount {
    wit::Mount {
        source: m.source.clone(),
        target: m.target.clone(),
        readonly: m.readonly,
    }
}

fn limits(l: &Limits) -> wit::Limits {
    wit::Limits {
        cpu_millis: l.cpu_millis,
        memory_bytes: l.memory_bytes,
        pids: l.pids,
    }
}

pub(crate) fn spec(s: &ContainerSpec) -> wit::ContainerSpec {
    wit::ContainerSpec {
        name: s.name.clone(),
        image: s.image.clone(),
        command: s.command.clone(),
        env: pairs(&s.env),
        labels: pairs(&s.labels),
        mounts: s.mounts.iter().map(mount).collect(),
        limits: limits(&s.limits),
        backend: s.backend.clone(),
        hostname: s.hostname.clone(),
        working_dir: s.working_dir.clone(),
        networks: s.networks.clone(),
        ports: s.ports.iter().map(port).collect(),
        address: s.network.as_ref().map(|n| wit::StaticAddress {
            address: n.ipv4.to_string(),
            subnet: n.subnet.clone(),
        }),
        dns: wit::DnsConfig {
            servers: s.dns.clone(),
            search: s.dns_search.clone(),
            options: s.dns_options.clone(),
        },
        extra_hosts: s.extra_hosts.iter().map(host_entry).collect(),
    }
}

/// A pod and its apps; the pod's networking is a container spec's, so it converts as one.
pub(crate) fn pod(pod: &PodSpec, apps: &[PodApp]) -> wit::PodSpec {
    let s = spec(&pod.as_container());
    wit::PodSpec {
        name: s.name,
        labels: s.labels,
        hostname: s.hostname,
        networks: s.networks,
        ports: s.ports,
        address: s.address,
        dns: s.dns,
        extra_hosts: s.extra_hosts,
        mounts: s.mounts,
        limits: s.limits,
        share_pid: pod.share_pid,
        backend: pod.backend.clone(),
        apps: apps
            .iter()
            .map(|a| wit::PodApp {
                name: a.name.clone(),
                spec: spec(&a.spec),
            })
            .collect(),
    }
}

fn port(p: &PortMapping) -> wit::PortMapping {
    wit::PortMapping {
        container_port: p.container_port,
        protocol: match p.protocol.as_str() {
            "udp" => wit::Protocol::Udp,
            "sctp" => wit::Protocol::Sctp,
            _ => wit::Protocol::Tcp,
        },
        host_port: p.host_port,
        host_ip: p.host_ip.clone(),
    }
}

fn host_entry(h: &HostEntry) -> wit::HostEntry {
    wit::HostEntry {
        name: h.name.clone(),
        address: h.ip.to_string(),
    }
}

pub(crate) fn backend_info(b: &BackendInfo) -> wit::BackendInfo {
    wit::BackendInfo {
        name: b.name.clone(),
        kind: b.kind.clone(),
        version: b.version.clone(),
        healthy: b.healthy,
        features: b.features.clone(),
    }
}

pub(crate) fn hook(h: Hook) -> wit::Hook {
    match h {
        Hook::PreCreate => wit::Hook::PreCreate,
        Hook::PostCreate => wit::Hook::PostCreate,
        Hook::PreStart => wit::Hook::PreStart,
        Hook::PostStart => wit::Hook::PostStart,
        Hook::PreStop => wit::Hook::PreStop,
        Hook::PostStop => wit::Hook::PostStop,
        Hook::PreRemove => wit::Hook::PreRemove,
        Hook::PostRemove => wit::Hook::PostRemove,
        Hook::CreateFailed => wit::Hook::CreateFailed,
    }
}

pub(crate) fn event(h: Hook, id: Option<&str>, reason: Option<&str>) -> wit::Event {
    wit::Event {
        hook: hook(h),
        id: id.map(str::to_string),
        reason: reason.map(str::to_string),
    }
}

/// Later entries for the same key, mount target or host name win, as if applied one by one.
/// A host entry that is no `NAME:ADDRESS` the CLI would take is the answer's fault, named.
pub(crate) fn patch(p: wit::Patch) -> Result<Patch, String> {
    let mut mounts: Vec<Mount> = Vec::new();
    for m in p.mounts {
        mounts.retain(|old| old.target != m.target);
        mounts.push(Mount {
            source: m.source,
            target: m.target,
            readonly: m.readonly,
            owner: None,
        });
    }
    let mut extra_hosts: Vec<HostEntry> = Vec::new();
    for h in p.extra_hosts {
        let entry = HostEntry::parse(&format!("{}:{}", h.name, h.address))
            .map_err(|e| format!("its patch adds a bad host entry: {e}"))?;
        extra_hosts.retain(|old| old.name != entry.name);
        extra_hosts.push(entry);
    }
    Ok(Patch {
        env: p.env.into_iter().collect(),
        labels: p.labels.into_iter().collect(),
        mounts,
        limits: p.limits.map(|l| Limits {
            cpu_millis: l.cpu_millis,
            memory_bytes: l.memory_bytes,
            pids: l.pids,
        }),
        dns: p.dns.map(|d| Dns {
            servers: d.servers,
            search: d.search,
            options: d.options,
        }),
        extra_hosts,
    })
}
