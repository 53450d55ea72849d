//! `berth volume create|ls|rm`: named volumes under the configured quota driver.

use berth_core::{Error, parse_size};
use berth_quota::Volumes;

use crate::cli::VolumeCommand;
use crate::host::Host;
use crate::output;

pub fn dispatch(host: &Host, command: VolumeCommand, json: bool) -> anyhow::Result<i32> {
    let volumes = Volumes::open(&host.config.quota, &host.store);
    match command {
        VolumeCommand::Create { name, size } => {
            let size = size.as_deref().map(parse_size).transpose()?;
            let volume = volumes.create(&name, size)?;
            if json {
                output::json(&volume);
            } else {
                println!("{}", volume.name);
            }
        }
        VolumeCommand::Ls => {
            output::listing(
                json,
                &volumes.list()?,
                &["NAME", "DRIVER", "LIMIT", "USED", "PATH"],
                |v| {
                    vec![
                        v.name.clone(),
                        v.driver.to_string(),
                        v.limit.map_or("-".into(), output::bytes),
                        output::bytes(v.used),
                        v.path.display().to_string(),
                    ]
                },
            );
        }
        VolumeCommand::Rm { volumes: names } => {
            let records = host.records()?;
            for name in &names {
                if let Some(user) = records
                    .iter()
                    .find(|r| r.spec.mounts.iter().any(|m| &m.source == name))
                {
                    return Err(Error::conflict(
                        format!("volume {name}"),
                        format!("container {} uses it", user.name),
                    )
                    .with_hint(format!(
                        "remove the container first: berth rm {}",
                        user.name
                    ))
                    .into());
                }
                volumes.remove(name)?;
                println!("{name}");
            }
        }
    }
    Ok(0)
}
