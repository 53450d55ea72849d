//! A frozen copy of `plugins/guard` as it was when berth:plugin was 0.3.0, built against
//! `wit/0.3.0`, so berth's tests prove components built then keep loading and working. Do not
//! update it; the plugin itself lives on in `plugins/guard`.
//!
//! Lifecycle hooks: stamps every container at pre-create (env `BERTH_CONTAINER_NAME`,
//! `BERTH_IMAGE`, label `berth.guard=checked`), refuses specs that break the site's rules, and
//! logs every other hook.
//!
//! Settings: `require-memory-limit` (`true` refuses specs without a memory limit),
//! `allowed-mount-prefixes` (`"/tmp,/srv"`: host paths mounted from elsewhere are refused),
//! `allowed-host-ports` (`"8000-8999,443"`: publishing on another host port is refused; a port
//! the host picks is allowed), `dns-servers` (`"10.0.0.53"`: the site's resolvers replace the
//! container's, its search domains and options kept).

wit_bindgen::generate!({ world: "lifecycle-hooks", path: "../../../wit/0.3.0" });

use berth::plugin::types::DnsConfig;
use berth::plugin::{config, log};
use exports::berth::plugin::hooks::{ContainerSpec, Event, Guest, Hook, Patch};

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
    if config::get("require-memory-limit").as_deref() == Some("true")
        && spec.limits.memory_bytes.is_none()
    {
        return Err(format!(
            "container {} has no memory limit (set one with --memory)",
            spec.name
        ));
    }
    if let Some(allowed) = config::get("allowed-mount-prefixes") {
        let prefixes: Vec<&str> = allowed
            .split(',')
            .map(|p| p.trim().trim_end_matches('/'))
            .collect();
        for mount in spec.mounts.iter().filter(|m| m.source.starts_with('/')) {
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
    }
    if let Some(allowed) = config::get("allowed-host-ports") {
        for port in &spec.ports {
            let Some(host_port) = port.host_port else {
                continue;
            };
            if !in_ranges(host_port, &allowed)? {
                return Err(format!(
                    "host port {host_port} is outside the allowed host ports {allowed}"
                ));
            }
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

export!(Guard);
