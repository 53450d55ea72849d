//! A frozen copy of `plugins/selector` as it was when berth:plugin was 0.3.0, built against
//! `wit/0.3.0`, so berth's tests prove components built then keep loading and working. Do not
//! update it; the plugin itself lives on in `plugins/selector`.
//!
//! Backend policy: honours a `berth.backend=<name>` label or a `--backend` request (refusing the
//! two when they disagree), then per-image rules, then picks the first healthy candidate that has
//! the features the spec's networking needs (published ports, named networks, a static address,
//! DNS servers), else the first healthy one; refuses when the chosen backend is not a healthy
//! candidate.
//!
//! Settings: `rules` = `"busybox*=native,nginx*=docker"` (image glob with a trailing `*`, first
//! match wins).

// The rules are plain Rust, untouched by the ABI: the plugin's own, shared.
#[path = "../../../selector/src/features.rs"]
mod features;
#[path = "../../../selector/src/rules.rs"]
mod rules;

wit_bindgen::generate!({ world: "backend-policy", path: "../../../wit/0.3.0" });

use berth::plugin::{config, log};
use exports::berth::plugin::placement::{BackendInfo, ContainerSpec, Guest};

struct Selector;

impl Guest for Selector {
    fn select_backend(spec: ContainerSpec, candidates: Vec<BackendInfo>) -> Result<String, String> {
        let needed = features::needed(
            &spec.networks,
            spec.ports.len(),
            spec.address.is_some(),
            !spec.dns.servers.is_empty(),
        );
        let candidates: Vec<(&str, bool, Vec<String>)> = candidates
            .iter()
            .map(|c| (c.name.as_str(), c.healthy, c.features.clone()))
            .collect();
        let choice = rules::select(
            &spec.image,
            &spec.labels,
            spec.backend.as_deref(),
            config::get("rules").as_deref(),
            &features::capable_first(&candidates, &needed),
        )?;
        log::log(log::Level::Debug, &format!("{} -> {choice}", spec.image));
        Ok(choice)
    }
}

export!(Selector);
