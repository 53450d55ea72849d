//! Lifecycle hooks for containers and pods: stamps every container at pre-create (env
//! `BERTH_CONTAINER_NAME`, `BERTH_IMAGE`, label `berth.guard=checked`), refuses containers and
//! pods that break the site's rules, and logs every other hook.
//!
//! Settings: `require-memory-limit` (`true` refuses specs without a memory limit),
//! `allowed-mount-prefixes` (`"/tmp,/srv"`: host paths mounted from elsewhere are refused),
//! `allowed-host-ports` (`"8000-8999,443"`: publishing on another host port is refused; a port
//! the host picks is allowed), `dns-servers` (`"10.0.0.53"`: the site's resolvers replace the
//! container's, its search domains and options kept). A pod meets the same memory, mount and
//! port rules at its pre-create (its cgroup's limit, its pod-wide mounts, its published ports).

// Both hook worlds in one component: the containers' and the pods'.
wit_bindgen::generate!({
    inline: "
        package berth:guard;
        world guard {
            include berth:plugin/lifecycle-hooks@0.4.0;
            include berth:plugin/pod-lifecycle-hooks@0.4.0;
        }
    ",
    path: "../../wit",
    world: "berth:guard/guard",
    generate_all,
});

use berth::plugin::types::{DnsConfig, Mount, PodSpec, PortMapping};
use berth::plugin::{config, log};
use exports::berth::plugin::hooks::{ContainerSpec, Event, Guest, Hook, Patch};
use exports::berth::plugin::pod_hooks;

struct Guard;

impl Guest for Guard {
    fn on_event(event: Event, spec: ContainerSpec) -> Result<Option<Patch>, String> {
        if event.hook != Hook::PreCreate {
            let id = event.id.as_deref().unwrap_or("-");
            log::log(
                log::Level::Info,
                &format!("{:?} {} ({id})", event.hook, spec.name),
            );
            return Ok(None);
        }
        check(&spec)?;
        Ok(Some(Patch {
            env: vec![
                ("BERTH_CONTAINER_NAME".into(), spec.name.clone()),
                ("BERTH_IMAGE".into(), spec.image.clone()),
            ],
            labels: vec![("berth.guard".into(), "checked".into())],
            mounts: Vec::new(),
            limits: None,
            dns: site_dns(&spec),
            extra_hosts: Vec::new(),
        }))
    }
}

/// The site rules; `Err` is the reason the user sees.
fn check(spec: &ContainerSpec) -> Result<(), String> {
    if requires_memory_limit() && spec.limits.memory_bytes.is_none() {
        return Err(format!(
            "container {} has no memory limit (set one with --memory)",
            spec.name
        ));
    }
    check_mounts(&spec.mounts)?;
    check_ports(&spec.ports)
}

/// The site rules for a pod: its cgroup's memory limit, its pod-wide mounts, its ports.
fn check_pod(pod: &PodSpec) -> Result<(), String> {
    if requires_memory_limit() && pod.limits.memory_bytes.is_none() {
        return Err(format!(
            "pod {} has no memory limit (set one with `berth pod create --memory`)",
            pod.name
        ));
    }
    check_mounts(&pod.mounts)?;
    check_ports(&pod.ports)
}

fn requires_memory_limit() -> bool {
    config::get("require-memory-limit").as_deref() == Some("true")
}

/// Host paths mounted from outside `allowed-mount-prefixes` are refused.
fn check_mounts(mounts: &[Mount]) -> Result<(), String> {
    let Some(allowed) = config::get("allowed-mount-prefixes") else {
        return Ok(());
    };
    let prefixes: Vec<&str> = allowed
        .split(',')
        .map(|p| p.trim().trim_end_matches('/'))
        .collect();
    for mount in mounts.iter().filter(|m| m.source.starts_with('/')) {
        let inside = prefixes.iter().any(|p| {
            mount.source == *p
                || mount
                    .source
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.starts_with('/'))
        });
        if !inside {
            return Err(format!(
                "mount source {} is outside the allowed prefixes {allowed}",
                mount.source
            ));
        }
    }
    Ok(())
}

/// Host ports outside `allowed-host-ports` are refused; a port the host picks is allowed.
fn check_ports(ports: &[PortMapping]) -> Result<(), String> {
    let Some(allowed) = config::get("allowed-host-ports") else {
        return Ok(());
    };
    for host_port in ports.iter().filter_map(|p| p.host_port) {
        if !in_ranges(host_port, &allowed)? {
            return Err(format!(
                "host port {host_port} is outside the allowed host ports {allowed}"
            ));
        }
    }
    Ok(())
}

/// Whether `port` is in `ranges` (`"8000-8999,443"`).
fn in_ranges(port: u16, ranges: &str) -> Result<bool, String> {
    for range in ranges.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let bad = || format!("setting `allowed-host-ports`: {range:?} is not PORT or LOW-HIGH");
        let (low, high) = range.split_once('-').unwrap_or((range, range));
        let low: u16 = low.trim().parse().map_err(|_| bad())?;
        let high: u16 = high.trim().parse().map_err(|_| bad())?;
        if (low..=high).contains(&port) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The site's resolvers in place of the container's, when `dns-servers` names them.
fn site_dns(spec: &ContainerSpec) -> Option<DnsConfig> {
    let servers: Vec<String> = config::get("dns-servers")?
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    Some(DnsConfig {
        servers,
        search: spec.dns.search.clone(),
        options: spec.dns.options.clone(),
    })
}

impl pod_hooks::Guest for Guard {
    fn on_pod_event(event: Event, pod: PodSpec) -> Result<(), String> {
        if event.hook == Hook::PreCreate {
            return check_pod(&pod);
        }
        let id = event.id.as_deref().unwrap_or("-");
        log::log(
            log::Level::Info,
            &format!(
                "pod {:?} {} ({id}, {} apps)",
                event.hook,
                pod.name,
                pod.apps.len()
            ),
        );
        Ok(())
    }
}

export!(Guard);
