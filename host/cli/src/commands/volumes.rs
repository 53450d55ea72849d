//! `berth volume create|ls|rm`: named volumes under the configured quota driver.

use berth_core::parse_size;

use crate::cli::VolumeCommand;
use crate::output;
use berth_engine::Engine;

pub fn dispatch(engine: &Engine, command: VolumeCommand, json: bool) -> anyhow::Result<i32> {
    let volumes = engine.volumes();
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
            for name in &names {
                engine.remove_volume(name)?;
                println!("{name}");
            }
        }
    }
    Ok(0)
}
