//! `berth plugin check FILE`: what a component implements and imports, and whether the current
//! configuration would load it — answered without running it or touching the cache.

use std::path::{Path, PathBuf};

use berth_core::config::{DEFAULT_MAX_SIZE_MB, Grant, PluginWorld};
use berth_core::{Config, Error, PluginFailure, Result};
use serde::Serialize;

use crate::answers;
use crate::engine;
use crate::plugin::{self, Unreadable};
use crate::worlds::{self, Abi, Worlds};

/// What `berth plugin check` prints.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CheckReport {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    /// Worlds whose exports the component provides with the right types.
    pub worlds: Vec<PluginWorld>,
    /// The `berth:plugin` version those exports target; `None` when it exports no world.
    pub abi: Option<Abi>,
    pub exports: Vec<String>,
    pub imports: Vec<String>,
    /// Grantable host interfaces the component imports: what its `grants` must list.
    pub needs_grants: Vec<Grant>,
    /// The `[[plugins]]` entry whose path is this file, if any.
    pub configured_as: Option<String>,
    /// Why that entry would not load, or, when no entry uses this file, why it is no plugin
    /// (an export the host cannot call, or no world at all). Empty: it would load.
    pub problems: Vec<String>,
}

impl CheckReport {
    /// Configured, and would load.
    pub fn loads(&self) -> bool {
        self.configured_as.is_some() && self.problems.is_empty()
    }
}

/// Inspects the component at `path` against `config`. `Err` only when the file cannot be read
/// or is not a component at all; a path that is not a regular file or is past the size bound
/// (its entry's `max-size-mb`, else the default) is refused before it is read: a config error
/// naming the entry when one uses the path, else invalid input.
pub fn check_component(path: &Path, config: &Config) -> Result<CheckReport> {
    let what = path.display().to_string();
    let fail = |message: String| answers::failed(&what, "check", PluginFailure::Load, message);
    let canonical = std::fs::canonicalize(path).ok();
    let entry = config
        .plugins
        .iter()
        .find(|p| std::fs::canonicalize(&p.path).ok() == canonical && canonical.is_some());
    let max_bytes = entry.map_or(DEFAULT_MAX_SIZE_MB << 20, plugin::max_bytes);
    let bytes = plugin::open_component(path, max_bytes)
        .and_then(|(file, _)| plugin::read_component(path, file, max_bytes))
        .map_err(|e| match e {
            Unreadable::Io(e) => fail(format!("cannot read {what}: {e}")),
            Unreadable::Refused(why) => match entry {
                Some(entry) => Error::Config {
                    path: config.source.clone(),
                    message: format!("[[plugins]] name = {:?}: {why}", entry.name),
                },
                None => Error::invalid(format!("plugin file {what}"), why),
            },
        })?;
    let runtime = engine::runtime().map_err(fail)?;
    let engine = &runtime.engine;
    let component = runtime
        .compile(&bytes)
        .map_err(|e| fail(format!("{what} is not a valid component: {e:#}")))?;
    let sha256 = plugin::sha256_hex(&bytes);
    let imports = plugin::imports(engine, &component);
    let exports = plugin::exports(engine, &component);

    // Link what it imports to learn the worlds; grants are judged from the imports.
    let found = runtime
        .instantiate_pre(&component, &imports)
        .map(|pre| Worlds::new(&pre));
    let (worlds, abi, broken) = match &found {
        Ok(found) => (found.implemented(), found.abi(), found.broken.clone()),
        Err(_) => (Vec::new(), None, Vec::new()),
    };
    let needs_grants = Grant::ALL
        .into_iter()
        .filter(|g| {
            imports
                .iter()
                .any(|i| i.starts_with(&format!("{}{g}@", plugin::PACKAGE)))
        })
        .collect();

    let mut problems: Vec<String> = broken
        .iter()
        .map(|(world, why)| format!("cannot be called as {}: {why}", world.as_str()))
        .collect();
    if worlds.is_empty() && broken.is_empty() {
        let expected: Vec<_> = PluginWorld::ALL
            .iter()
            .map(|w| worlds::export_name(*w, Abi::CURRENT))
            .collect();
        problems.push(format!(
            "exports none of {} (or links imports this berth does not provide)",
            expected.join(", ")
        ));
    }
    if let Some(entry) = entry {
        problems.extend(plugin::problems(entry, &sha256, &imports, &config.source));
        let listed = entry
            .worlds
            .iter()
            .filter(|w| !worlds.contains(w) && !broken.iter().any(|(b, _)| b == *w));
        for world in listed {
            problems.push(format!(
                "[[plugins]] name = {:?} lists world {} but the component does not export {}",
                entry.name,
                world.as_str(),
                worlds::export_name(*world, abi.unwrap_or(Abi::CURRENT))
            ));
        }
    }
    Ok(CheckReport {
        path: path.to_path_buf(),
        sha256,
        size: bytes.len() as u64,
        worlds,
        abi,
        exports,
        imports,
        needs_grants,
        configured_as: entry.map(|e| e.name.clone()),
        problems,
    })
}
