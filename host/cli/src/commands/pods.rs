//! `berth pod create|ls|inspect|rm`; apps join with `berth run --pod`.

use std::sync::Arc;

use berth_engine::Engine;
use berth_engine::pods::PodSpec;

use crate::cli::{PodCommand, PodCreateArgs};
use crate::output;

pub async fn dispatch(
    engine: &Arc<Engine>,
    command: PodCommand,
    json: bool,
) -> anyhow::Result<i32> {
    match command {
        PodCommand::Create(args) => {
            let PodCreateArgs {
                name,
                label,
                hostname,
                backend,
                net,
            } = *args;
            let net = net.parse()?;
            let mut spec = PodSpec {
                name: name.unwrap_or_default(),
                hostname,
                networks: net.networks,
                ports: net.ports,
                dns: net.dns,
                dns_search: net.dns_search,
                dns_options: net.dns_options,
                extra_hosts: net.extra_hosts,
                backend,
                ..PodSpec::default()
            };
            for text in &label {
                let (key, value) = berth_core::parse_key_value("--label", text)?;
                spec.labels.insert(key, value);
            }
            let pod = engine.create_pod(spec).await?;
            println!("{}", pod.id);
        }
        PodCommand::Ls => {
            let mut infos = Vec::new();
            for pod in engine.pods()? {
                infos.push(engine.pod_info(&pod).await);
            }
            output::listing(
                json,
                &infos,
                &["POD ID", "NAME", "STATE", "APPS", "HOSTNAME"],
                |p| {
                    vec![
                        p.id[..12].to_string(),
                        p.name.clone(),
                        p.state.clone(),
                        p.apps.len().to_string(),
                        p.hostname.clone(),
                    ]
                },
            );
        }
        PodCommand::Inspect { pods } => {
            let mut shown = Vec::new();
            for reference in &pods {
                let pod = engine.resolve_pod(reference)?;
                shown.push(engine.pod_info(&pod).await);
            }
            output::json(&shown);
        }
        PodCommand::Rm { force, pods } => {
            for reference in &pods {
                let pod = engine.resolve_pod(reference)?;
                engine.remove_pod(&pod, force).await?;
                println!("{}", pod.name);
            }
        }
    }
    Ok(0)
}
