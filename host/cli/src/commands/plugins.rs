//! `berth plugin ls|check|call` and `berth events`: what plugin authors and operators use to see
//! what the plugins are and what they decided.

use std::path::Path;
use std::sync::Arc;

use berth_core::{Config, Error};
use berth_plugins::{Function, check_component, events};

use crate::output;
use berth_engine::Engine;

pub fn ls(engine: &Arc<Engine>, json: bool) -> anyhow::Result<i32> {
    // The serving process may run another set than the config names now: say so.
    let run_dir = &engine.config.host.run_dir;
    let served = berth_cri::reload::read_state(run_dir).filter(berth_cri::reload::serving);
    if let Some(served) = served
        && let Some(why) = &served.failed
    {
        eprintln!(
            "{}",
            output::escaped(&format!(
                "warning: berth cri serve (pid {}) still serves its previous plugins ({}): reloading failed: {why}",
                served.pid,
                served.serving.join(", ")
            ))
        );
    }
    let summaries = engine
        .plugins()?
        .map(|plugins| plugins.summaries())
        .unwrap_or_default();
    if json {
        output::json(&summaries);
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = summaries
        .iter()
        .map(|p| {
            let worlds: Vec<&str> = p.worlds.iter().map(|w| w.as_str()).collect();
            vec![
                p.name.clone(),
                worlds.join(","),
                if p.grants.is_empty() {
                    "-".into()
                } else {
                    let grants: Vec<&str> = p.grants.iter().map(|g| g.as_str()).collect();
                    grants.join(",")
                },
                format!("{:?}", p.mode).to_lowercase(),
                format!("{}ms/{}MiB", p.timeout_ms, p.memory_mb),
                format!("{:?}", p.cache).to_lowercase(),
                output::short_id(&p.sha256).to_string(),
            ]
        })
        .collect();
    output::table(
        &[
            "NAME", "WORLDS", "GRANTS", "MODE", "BUDGET", "CACHE", "SHA256",
        ],
        &rows,
    );
    Ok(0)
}

/// `berth plugin reload`: the server's new set, or why it kept the old one (70, or 78 for a
/// config that does not parse).
pub fn reload(engine: &Arc<Engine>, json: bool) -> anyhow::Result<i32> {
    let run_dir = &engine.config.host.run_dir;
    let state = berth_cri::reload::request(run_dir, std::time::Duration::from_secs(120))?;
    if json {
        output::json(&state);
    } else if let Some(why) = &state.failed {
        eprintln!(
            "{}",
            output::escaped(&format!(
                "berth: reloading the plugins failed; the previous ones ({}) keep serving: {why}",
                state.serving.join(", ")
            ))
        );
    } else {
        println!("reloaded: {}", output::escaped(&state.serving.join(", ")));
    }
    Ok(match (&state.failed, state.config_error) {
        (None, _) => 0,
        (Some(_), true) => crate::exit::CONFIG,
        (Some(_), false) => crate::exit::PLUGIN_FAILED,
    })
}

/// Exits 0 when the component would load as configured (or is not configured but is a valid
/// plugin), 78 when its config entry would refuse it, 70 when it is not configured and is no
/// plugin the host can call (it exports no world, or one with the wrong types). What the
/// component names (exports, imports) is escaped like any other foreign text.
pub fn check(file: &Path, config: &Config, json: bool) -> anyhow::Result<i32> {
    let report = check_component(file, config)?;
    let code = match (&report.configured_as, report.problems.is_empty()) {
        (_, true) => 0,
        (Some(_), false) => crate::exit::CONFIG,
        (None, false) => crate::exit::PLUGIN_FAILED,
    };
    if json {
        output::json(&report);
    } else {
        let line = |text: String| println!("{}", output::escaped(&text));
        line(format!(
            "component  {} ({} bytes, sha256 {})",
            report.path.display(),
            report.size,
            report.sha256
        ));
        let worlds: Vec<&str> = report.worlds.iter().map(|w| w.as_str()).collect();
        line(format!(
            "worlds     {}",
            if worlds.is_empty() {
                "none".into()
            } else {
                worlds.join(", ")
            }
        ));
        if let Some(abi) = report.abi {
            line(format!("abi        berth:plugin@{abi}"));
        }
        line(format!("exports    {}", report.exports.join(", ")));
        line(format!("imports    {}", report.imports.join(", ")));
        if !report.needs_grants.is_empty() {
            let grants: Vec<&str> = report.needs_grants.iter().map(|g| g.as_str()).collect();
            line(format!("grants     needs {}", grants.join(", ")));
        }
        match &report.configured_as {
            Some(name) if report.loads() => line(format!(
                "config     loads as plugin {name:?} from {}",
                config.source
            )),
            Some(name) => line(format!(
                "config     plugin {name:?} in {} would NOT load:",
                config.source
            )),
            None if report.problems.is_empty() => {
                line(format!("config     not used by {}", config.source))
            }
            None => line(format!(
                "config     not used by {}, and is no plugin berth can call:",
                config.source
            )),
        }
        for problem in &report.problems {
            line(format!("  - {problem}"));
        }
    }
    Ok(code)
}

pub async fn call(
    engine: &Arc<Engine>,
    name: &str,
    function: &str,
    spec_file: &Path,
    json: bool,
) -> anyhow::Result<i32> {
    let function: Function = function.parse()?;
    let plugins = engine.plugins()?.ok_or_else(|| {
        Error::not_found(berth_core::Object::Plugin, name)
            .with_hint(format!("{} configures no plugins", engine.config.source))
    })?;
    let decision = match function {
        // A pod hook is told a pod: the file is a pod spec (`berth pod create`'s fields).
        Function::PodEvent(hook) => {
            let pod = super::containers::read_spec(spec_file)?;
            plugins.call_pod(name, hook, &pod)?
        }
        _ => {
            let spec = super::containers::read_spec(spec_file)?;
            let candidates = engine.backend_infos().await;
            plugins.call(name, function, &spec, &candidates, None)?
        }
    };
    if json {
        output::json(&decision);
    } else {
        println!("{}", output::escaped(&decision.to_string()));
    }
    Ok(0)
}

pub fn events(engine: &Engine, follow: bool, json: bool) -> anyhow::Result<i32> {
    let path = events::log_path(&engine.config.host);
    let print = |decision: &berth_plugins::Decision| {
        if json {
            println!(
                "{}",
                serde_json::to_string(decision).expect("decisions serialise")
            );
        } else {
            println!("{}", output::escaped(&decision.to_string()));
        }
    };
    if follow {
        events::follow(&path, true, |decision| {
            print(&decision);
            true
        })?;
    } else {
        for decision in events::read(&path)? {
            print(&decision);
        }
    }
    Ok(0)
}
