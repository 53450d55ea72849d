// The plugin's code as it was written against berth:plugin 0.1.0; the same code, unchanged,
// built against 0.2.0 (`plugins/compat-0.2/selector`) includes it after its own bindings.

use berth::plugin::{config, log};
use exports::berth::plugin::placement::{BackendInfo, ContainerSpec, Guest};

struct Selector;

impl Guest for Selector {
    fn select_backend(spec: ContainerSpec, candidates: Vec<BackendInfo>) -> Result<String, String> {
        let healthy: Vec<(&str, bool)> = candidates
            .iter()
            .map(|c| (c.name.as_str(), c.healthy))
            .collect();
        let choice = rules::select(
            &spec.image,
            &spec.labels,
            spec.backend.as_deref(),
            config::get("rules").as_deref(),
            &healthy,
        )?;
        log::log(log::Level::Debug, &format!("{} -> {choice}", spec.image));
        Ok(choice)
    }
}

export!(Selector);
