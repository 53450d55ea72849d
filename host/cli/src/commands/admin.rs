//! `berth backend ls` and `berth config check|show`.

use std::path::Path;

use berth_core::{Config, Error, config::DEFAULT_CONFIG};
use sha2::{Digest, Sha256};

use crate::cli::ConfigCommand;
use crate::output;
use berth_engine::Engine;

pub async fn backend_ls(engine: &Engine, json: bool) -> anyhow::Result<i32> {
    let infos = engine.backend_infos().await;
    output::listing(
        json,
        &infos,
        &["NAME", "KIND", "VERSION", "HEALTHY", "FEATURES / DETAIL"],
        |info| {
            vec![
                info.name.clone(),
                info.kind.clone(),
                info.version.clone(),
                if info.healthy { "yes" } else { "no" }.to_string(),
                info.detail
                    .clone()
                    .unwrap_or_else(|| info.features.join(",")),
            ]
        },
    );
    // A script checking backends wants to know if any is down.
    Ok(if infos.iter().all(|i| i.healthy) {
        0
    } else {
        crate::exit::UNAVAILABLE
    })
}

pub async fn gc(
    engine: &std::sync::Arc<Engine>,
    dry_run: bool,
    exited_grace: Option<&String>,
    restart: bool,
    json: bool,
) -> anyhow::Result<i32> {
    let options = berth_engine::GcOptions {
        dry_run,
        exited_older_than: exited_grace.map(|g| parse_duration(g)).transpose()?,
        restart,
    };
    let report = engine.gc(options).await?;
    if json {
        output::json(&report);
    } else {
        let verb = if dry_run { "would remove" } else { "removed" };
        for line in &report.removed {
            println!("{verb}: {line}");
        }
        let verb = if dry_run {
            "would restart"
        } else {
            "restarted"
        };
        for line in &report.restarted {
            println!("{verb}: {line}");
        }
        for line in &report.failed {
            eprintln!("berth: gc: {line}");
        }
    }
    Ok(if report.failed.is_empty() {
        0
    } else {
        crate::exit::OTHER
    })
}

/// `30s`, `10m`, `2h`, `1d` (a bare number is seconds).
pub fn parse_duration(text: &str) -> berth_core::Result<std::time::Duration> {
    let bad = || {
        Error::invalid(format!("duration {text:?}"), "not a duration")
            .with_hint("use a number with s, m, h or d, e.g. 30m")
    };
    let (number, unit) = match text.trim().char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text.trim()[..i], c),
        _ => (text.trim(), 's'),
    };
    let seconds: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86400,
        _ => return Err(bad()),
    };
    let value: u64 = number.parse().map_err(|_| bad())?;
    Ok(std::time::Duration::from_secs(
        value.saturating_mul(seconds),
    ))
}

pub fn config(command: &ConfigCommand, global: Option<&Path>, json: bool) -> anyhow::Result<i32> {
    match command {
        ConfigCommand::Show => {
            let config = Config::load(global)?;
            if config.source == "<built-in>" {
                print!("{DEFAULT_CONFIG}");
            } else {
                println!("# {}", config.source);
                print!("{}", config.to_toml());
            }
            Ok(0)
        }
        ConfigCommand::Check { file } => {
            let config = Config::load(file.as_deref().or(global))?;
            config.host.check_dirs(&config.source)?;
            check_plugin_files(&config)?;
            if json {
                output::json(&serde_json::json!({
                    "ok": true,
                    "source": config.source,
                    "backends": config.backends.keys().collect::<Vec<_>>(),
                    "plugins": config.plugins.iter().map(|p| &p.name).collect::<Vec<_>>(),
                }));
            } else {
                println!(
                    "{}: ok ({} backend(s): {}; {} plugin(s){}{})",
                    config.source,
                    config.backends.len(),
                    config
                        .backends
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                    config.plugins.len(),
                    if config.plugins.is_empty() { "" } else { ": " },
                    config
                        .plugins
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                );
            }
            Ok(0)
        }
    }
}

/// Static checks that need no wasmtime: each plugin file exists and matches its pin.
fn check_plugin_files(config: &Config) -> berth_core::Result<()> {
    for plugin in &config.plugins {
        let err = |message: String| Error::Config {
            path: config.source.clone(),
            message: format!("[[plugins]] name = {:?}: {message}", plugin.name),
        };
        let bytes = std::fs::read(&plugin.path).map_err(|e| {
            err(format!(
                "cannot read {}: {e} (fix `path`)",
                plugin.path.display()
            ))
        })?;
        if let Some(pin) = &plugin.sha256 {
            let actual = hex::encode(Sha256::digest(&bytes));
            if !actual.eq_ignore_ascii_case(pin) {
                return Err(err(format!(
                    "{} has sha256 {actual}, but the config pins {pin} (update `sha256` if the new component is trusted)",
                    plugin.path.display()
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30m").unwrap().as_secs(), 1800);
        assert_eq!(parse_duration("2h").unwrap().as_secs(), 7200);
        assert_eq!(parse_duration("45").unwrap().as_secs(), 45);
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3w").is_err());
    }
}
