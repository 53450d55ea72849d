//! A berth spec as a Docker create request, by sysinner's driver rules: the mapping platform
//! teams rely on when they read `docker inspect`.

use std::collections::HashMap;

use berth_core::{ContainerSpec, RestartPolicy, Result};
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, NetworkingConfig,
    PortBinding, ResourcesUlimits, RestartPolicyNameEnum,
};

/// The bridge network that carries containers with a static address.
pub const VPC_NETWORK: &str = "invpc2_docker";

/// The label that ties a Docker container to berth's id for it.
pub const ID_LABEL: &str = "berth.id";

/// Docker's default when the spec sets no pids limit.
pub const DEFAULT_PIDS_LIMIT: i64 = 100;

/// Open files allowed per container, soft and hard.
pub const NOFILE_LIMIT: i64 = 10_000;

/// The create body for `spec`, labelled with berth's `id` and the installation's `store` id.
/// The VPC network's subnet: Docker's static address needs one (`--subnet`).
pub fn vpc_subnet(network: &berth_core::NetworkSpec) -> Result<String> {
    network.cidr()?.ok_or_else(|| {
        berth_core::Error::invalid(
            format!("static address {}", network.ipv4),
            "the docker backend puts it on its VPC network, which needs a subnet",
        )
        .with_hint("add --subnet, e.g. --subnet 10.10.0.0/24")
    })
}

pub fn create_body(id: &str, store: &str, spec: &ContainerSpec) -> Result<ContainerCreateBody> {
    let mut labels: HashMap<String, String> = spec
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(ID_LABEL.into(), id.into());
    labels.insert(berth_core::STORE_LABEL.into(), store.into());

    let memory = spec.limits.memory_bytes.map(|m| m as i64);
    let mut host = HostConfig {
        nano_cpus: spec.limits.cpu_millis.map(|m| m as i64 * 1_000_000),
        // No swap: the limit covers memory and swap together.
        memory,
        memory_swap: memory,
        shm_size: memory.map(|m| m / 2),
        pids_limit: Some(spec.limits.pids.map_or(DEFAULT_PIDS_LIMIT, |p| p as i64)),
        ulimits: Some(vec![ResourcesUlimits {
            name: Some("nofile".into()),
            soft: Some(NOFILE_LIMIT),
            hard: Some(NOFILE_LIMIT),
        }]),
        restart_policy: Some(bollard::models::RestartPolicy {
            name: Some(match spec.restart {
                RestartPolicy::No => RestartPolicyNameEnum::NO,
                RestartPolicy::Always => RestartPolicyNameEnum::ALWAYS,
                RestartPolicy::OnFailure => RestartPolicyNameEnum::ON_FAILURE,
                RestartPolicy::UnlessStopped => RestartPolicyNameEnum::UNLESS_STOPPED,
            }),
            maximum_retry_count: spec.restart_max_retries.map(i64::from),
        }),
        ..HostConfig::default()
    };
    if !spec.dns.is_empty() {
        host.dns = Some(spec.dns.clone());
    }
    if spec.tty {
        host.console_size = spec.console_size.map(console_size);
    }
    if !spec.mounts.is_empty() {
        host.binds = Some(
            spec.mounts
                .iter()
                .map(|m| {
                    let mode = if m.readonly { ":ro" } else { "" };
                    format!("{}:{}{mode}", m.source, m.target)
                })
                .collect(),
        );
    }

    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for port in &spec.ports {
        let key = format!("{}/{}", port.container_port, port.protocol);
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: port.host_ip.clone(),
                host_port: port.host_port.map(|p| p.to_string()),
            });
    }
    if !bindings.is_empty() {
        host.port_bindings = Some(bindings);
    }

    // `none` and `host` are Docker's own modes; named berth networks are not Docker's
    // (the engine refuses them here: this backend lacks the `networks` capability).
    if let [mode] = spec.networks.as_slice()
        && [berth_core::NETWORK_NONE, berth_core::NETWORK_HOST].contains(&mode.as_str())
    {
        host.network_mode = Some(mode.clone());
    }
    let mut networking = None;
    if let Some(network) = &spec.network {
        vpc_subnet(network)?;
        host.network_mode = Some(VPC_NETWORK.into());
        networking = Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                VPC_NETWORK.to_string(),
                EndpointSettings {
                    ipam_config: Some(EndpointIpamConfig {
                        ipv4_address: Some(network.ipv4.to_string()),
                        ..EndpointIpamConfig::default()
                    }),
                    ..EndpointSettings::default()
                },
            )])),
        });
    }

    Ok(ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
        entrypoint: spec.entrypoint.clone(),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(labels),
        hostname: spec.hostname.clone(),
        working_dir: spec.working_dir.clone(),
        tty: Some(spec.tty),
        open_stdin: Some(spec.stdin_open),
        // On a terminal the end of a client's stdin is a detach, never the container's end of
        // input (as native keeps it).
        stdin_once: Some(spec.stdin_once && !spec.tty),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        host_config: Some(host),
        networking_config: networking,
        ..ContainerCreateBody::default()
    })
}

/// Docker's `[height, width]`.
pub(crate) fn console_size(size: berth_core::TerminalSize) -> Vec<usize> {
    vec![usize::from(size.rows), usize::from(size.cols)]
}

#[cfg(test)]
mod tests {
    use berth_core::{Limits, Mount, NetworkSpec, PortMapping};

    use super::*;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "app-0123abcd-0001".into(),
            image: "busybox:local".into(),
            ..ContainerSpec::default()
        }
    }

    #[test]
    fn limits_follow_the_driver_rules() {
        let mut s = spec();
        s.limits = Limits {
            cpu_millis: Some(1500),
            memory_bytes: Some(64 << 20),
            pids: None,
        };
        let host = create_body("id", "store", &s).unwrap().host_config.unwrap();
        assert_eq!(host.nano_cpus, Some(1_500_000_000));
        assert_eq!(host.memory, Some(64 << 20));
        assert_eq!(host.memory_swap, Some(64 << 20));
        assert_eq!(host.shm_size, Some(32 << 20));
        assert_eq!(host.pids_limit, Some(100));
        let nofile = &host.ulimits.unwrap()[0];
        assert_eq!(
            (nofile.name.as_deref(), nofile.soft, nofile.hard),
            (Some("nofile"), Some(10_000), Some(10_000))
        );
    }

    #[test]
    fn a_terminal_is_dockers_with_its_size_and_outlives_a_clients_stdin() {
        let mut s = spec();
        s.tty = true;
        s.stdin_open = true;
        s.stdin_once = true;
        s.console_size = Some(berth_core::TerminalSize {
            rows: 33,
            cols: 101,
        });
        let body = create_body("id", "store", &s).unwrap();
        assert_eq!(body.tty, Some(true));
        assert_eq!(
            body.stdin_once,
            Some(false),
            "a detach must not end its input"
        );
        let host = body.host_config.unwrap();
        assert_eq!(host.console_size, Some(vec![33, 101]));
        s.tty = false;
        let body = create_body("id", "store", &s).unwrap();
        assert_eq!((body.tty, body.stdin_once), (Some(false), Some(true)));
        assert_eq!(body.host_config.unwrap().console_size, None);
    }

    #[test]
    fn unset_fields_stay_unset() {
        let body = create_body("id", "store", &spec()).unwrap();
        assert_eq!(body.hostname, None);
        assert_eq!(body.cmd, None);
        assert_eq!(body.exposed_ports, None);
        let host = body.host_config.unwrap();
        assert_eq!(
            (host.memory, host.shm_size, host.nano_cpus),
            (None, None, None)
        );
        assert_eq!(host.dns, None);
        assert_eq!(host.network_mode, None);
        assert_eq!(body.labels.unwrap()[ID_LABEL], "id");
    }

    #[test]
    fn ports_binds_dns_restart_and_network() {
        let mut s = spec();
        s.ports = vec![
            PortMapping::parse("127.0.0.1:8080:80").unwrap(),
            PortMapping::parse("5353:53/udp").unwrap(),
        ];
        s.mounts = vec![Mount::parse("/srv/a:/a:ro").unwrap()];
        s.dns = vec!["10.0.0.2".into()];
        s.restart = RestartPolicy::OnFailure;
        s.network = Some(NetworkSpec {
            ipv4: "10.77.0.5".parse().unwrap(),
            subnet: Some("10.77.0.0".into()),
        });
        let body = create_body("id", "store", &s).unwrap();
        assert_eq!(
            body.exposed_ports.unwrap(),
            vec!["80/tcp".to_string(), "53/udp".to_string()]
        );
        let host = body.host_config.unwrap();
        let bindings = host.port_bindings.unwrap();
        let web = bindings["80/tcp"].as_ref().unwrap();
        assert_eq!(web[0].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(web[0].host_port.as_deref(), Some("8080"));
        assert_eq!(host.binds.unwrap(), vec!["/srv/a:/a:ro".to_string()]);
        assert_eq!(host.dns.unwrap(), vec!["10.0.0.2".to_string()]);
        assert_eq!(
            host.restart_policy.unwrap().name,
            Some(RestartPolicyNameEnum::ON_FAILURE)
        );
        assert_eq!(host.network_mode.as_deref(), Some(VPC_NETWORK));
        let endpoint = &body.networking_config.unwrap().endpoints_config.unwrap()[VPC_NETWORK];
        assert_eq!(
            endpoint
                .ipam_config
                .as_ref()
                .unwrap()
                .ipv4_address
                .as_deref(),
            Some("10.77.0.5")
        );
    }
}
