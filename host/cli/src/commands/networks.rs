//! `berth network create|ls|inspect|rm`: berth's CNI bridge networks.

use serde::Serialize;

use crate::cli::NetworkCommand;
use crate::output;
use berth_engine::Engine;

/// `network inspect`: the network and the containers attached to it.
#[derive(Serialize)]
struct Inspected {
    #[serde(flatten)]
    network: berth_network::Network,
    containers: Vec<String>,
}

pub fn dispatch(engine: &Engine, command: NetworkCommand, json: bool) -> anyhow::Result<i32> {
    let networks = engine.networks();
    match command {
        NetworkCommand::Create {
            name,
            subnet,
            gateway,
        } => {
            let network = networks.create(&name, subnet.as_deref(), gateway)?;
            if json {
                output::json(&network);
            } else {
                println!("{}", network.name);
            }
        }
        NetworkCommand::Ls => {
            let mut all = networks.list()?;
            if !all.iter().any(|n| n.default) && networks.default_name() != berth_core::NETWORK_NONE
            {
                // Made on first use; listed from the start, as docker lists `bridge`.
                all.insert(0, networks.get(networks.default_name())?);
            }
            output::listing(
                json,
                &all,
                &["NAME", "DRIVER", "SUBNET", "GATEWAY", "BRIDGE"],
                |n| {
                    vec![
                        if n.default {
                            format!("{} (default)", n.name)
                        } else {
                            n.name.clone()
                        },
                        n.driver.clone(),
                        n.subnet.clone(),
                        n.gateway.clone(),
                        n.bridge.clone(),
                    ]
                },
            );
        }
        NetworkCommand::Inspect { networks: names } => {
            let mut shown = Vec::new();
            for name in &names {
                shown.push(Inspected {
                    network: networks.get(name)?,
                    containers: engine.network_users(name)?,
                });
            }
            output::json(&shown);
        }
        NetworkCommand::Rm { networks: names } => {
            for name in &names {
                engine.remove_network(name)?;
                println!("{name}");
            }
        }
    }
    Ok(0)
}
